// H4 (docs/THREATS.md): the job's terms (operator, price, worst case) travel from the serving node
// to the client in PAYMENT_REQUIRED, through every peer on the route, and nothing the client signed
// named the price. An attacker relay (a real libp2p host on 127.0.0.1 that forwards /openlora/infer
// frames to the real node, as any entry peer does) rewrites them: a higher price makes the client
// sign a larger maximum, its own operator makes the client sign a voucher the relay can claim from
// the client's escrow there. And a node charged its own price whatever the client had signed.
// Now the node signs its terms (operator key, EIP-712 in the Settlement domain), the client signs
// the terms it accepted in its request, the node serves only those and charges exactly them.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Stream } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { privateKeyToAccount } from 'viem/accounts'
import { amountDue, type SignedVoucher, voucherFromJson } from '../../src/chain/eip712.ts'
import {
  decodeRequestFrame,
  encodeFrame,
  type PaymentTerms,
  type RequestFrame
} from '../../src/protocols/infer/codec.ts'
import {
  INFER_PROTOCOL,
  MAX_REQUEST_FRAME_BYTES,
  MAX_RESPONSE_FRAME_BYTES
} from '../../src/protocols/infer/constants.ts'
import { readResponses } from '../../src/protocols/infer/stream.ts'
import { framed } from '../../src/protocols/shared/framed.ts'
import {
  addrOf,
  claimAndRead,
  countTokens,
  escrowAt,
  fund,
  job,
  OPEN,
  type Party,
  PRICE,
  PROMPT,
  party,
  rawVoucher,
  type Stage,
  stage,
  wire,
  worth
} from './fixture.ts'

const MAX = 16

interface Relay {
  addr: string
  /** every voucher that passed through, as the relay saw it */
  vouchers: SignedVoucher[]
  rewriteTerms?: (t: PaymentTerms) => PaymentTerms
  rewriteRequest?: (f: RequestFrame) => RequestFrame
  stop(): Promise<void>
}

/** A peer on the route that forwards jobs to `to` and rewrites what it likes on the way. */
async function attackerRelay(to: string): Promise<Relay> {
  const node: Libp2p = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
  const self = node.peerId.toString()
  const relay: Relay = {
    addr: String(node.getMultiaddrs()[0]),
    vouchers: [],
    stop: async () => {
      await node.stop()
    }
  }
  await node.handle(INFER_PROTOCOL, async (stream: Stream) => {
    const inLp = framed(stream, MAX_REQUEST_FRAME_BYTES)
    const signal = AbortSignal.timeout(60_000)
    let frame = decodeRequestFrame((await inLp.read({ signal })).subarray())
    if (frame.body.voucher) relay.vouchers.push(voucherFromJson(frame.body.voucher))
    frame = { ...frame, route: [...frame.route, self] }
    if (relay.rewriteRequest) frame = relay.rewriteRequest(frame)
    const out = await node.dialProtocol(multiaddr(to), INFER_PROTOCOL, { signal })
    const outLp = framed(out, MAX_RESPONSE_FRAME_BYTES)
    await outLp.write(encodeFrame(frame), { signal })
    const back = framed(stream, MAX_RESPONSE_FRAME_BYTES)
    try {
      for await (const { frame: f, data } of readResponses(outLp, signal)) {
        if (f.t === 'error' && f.payment && relay.rewriteTerms)
          await back.write(encodeFrame({ ...f, payment: relay.rewriteTerms(f.payment) }), { signal })
        else await back.write(data, { signal })
      }
      await stream.close()
    } catch (err) {
      stream.abort(err as Error)
    }
  })
  return relay
}

let s: Stage
let relay: Relay
let victim: Party
const relayOperator = () => privateKeyToAccount(s.keys[5]!).address

test.before(async () => {
  s = await stage({ name: 'h4' })
  relay = await attackerRelay(addrOf(s.a))
  victim = await party(s, 4)
  await fund(victim.chain, s.operator(s.a), 10n * OPEN)
})
test.after(async () => {
  await relay?.stop()
  await victim?.stop()
  await s?.stop()
})

test('a relay raises the price in the node terms: the client signs nothing above the real worst case', async () => {
  relay.rewriteTerms = (t) => ({
    ...t,
    pricePer1kTokens: (BigInt(t.pricePer1kTokens) * 4n).toString(),
    maxAmountDue: (BigInt(t.maxAmountDue) * 4n).toString()
  })
  const r = await countTokens(victim.infer, relay.addr, job(s, MAX))
  const { signed } = await victim.wallet.channel(s.operator(s.a), s.adapterId)
  assert.ok(
    signed <= worth(MAX),
    `the client signed a maximum of ${signed} wei; at the node's real price the job can cost ${worth(MAX)}`
  )
  assert.is(r.ok, false, 'rewritten terms are refused')
  assert.is((r.error as { code?: string }).code, 'PAYMENT_REFUSED', String(r.error))
  assert.is(r.tokens, 0)
})

test('a relay names its own operator: it gets no voucher to claim from the client', async () => {
  const mine = relayOperator()
  // a client that has not met this route yet (no terms remembered from the test above)
  const victim = await party(s, 7)
  await fund(victim.chain, s.operator(s.a), 10n * OPEN)
  // the client also uses the relay's operator as a node: it holds an escrow there
  await fund(victim.chain, mine, 10n * OPEN)
  relay.vouchers.length = 0
  relay.rewriteTerms = (t) => ({ ...t, operator: mine })
  const r = await countTokens(victim.infer, relay.addr, job(s, MAX))
  assert.is(r.ok, false)
  const stolen = relay.vouchers.filter((v) => v.node.toLowerCase() === mine.toLowerCase())
  if (stolen.length > 0) await s.as(5).claim(stolen)
  assert.is(await escrowAt(victim.chain, mine), 10n * OPEN, 'the client paid the relay for nothing')
  assert.is(stolen.length, 0, 'the client signed a voucher for an operator the node never named')
  await victim.stop()
})

test('a relay raises maxNewTokens in the request: the node refuses the request', async () => {
  relay.rewriteTerms = undefined
  relay.rewriteRequest = (f) => ({
    ...f,
    body: { ...f.body, params: { ...f.body.params, maxNewTokens: MAX * 4 } }
  })
  const r = await countTokens(victim.infer, relay.addr, job(s, MAX))
  relay.rewriteRequest = undefined
  assert.is(r.ok, false)
  assert.is((r.error as { code?: string }).code, 'BAD_REQUEST', String(r.error))
  assert.is(r.tokens, 0)
})

test('a node never charges more than the price the client signed', async () => {
  const attacker = await party(s, 6)
  try {
    await fund(attacker.chain, s.operator(s.a), 10n * OPEN)
    // the client accepted half the node's price; its voucher would cover the node's price too
    const v = await rawVoucher(attacker, s, s.operator(s.a), worth(MAX) * 2n)
    const half = (PRICE / 2n).toString()
    const r = await countTokens(
      attacker.infer,
      addrOf(s.a),
      job(s, MAX, {
        voucher: wire(v),
        terms: { operator: s.operator(s.a), pricePer1kTokens: half }
      } as never)
    )
    const paid = await claimAndRead(s, s.a, attacker.account.address)
    const due = r.ok ? amountDue(PROMPT.length, r.tokens, PRICE / 2n) : 0n
    assert.ok(paid <= due, `the node was paid ${paid} wei; at the price the client signed it is owed ${due}`)
    if (!r.ok) assert.is((r.error as { code?: string }).code, 'PAYMENT_REQUIRED', String(r.error))
  } finally {
    await attacker.stop()
  }
})

test('through an honest relay the client pays exactly the signed price for what it got', async () => {
  const before = await claimAndRead(s, s.a, victim.account.address)
  const owedBefore = (await victim.wallet.channel(s.operator(s.a), s.adapterId)).owed
  const r = await countTokens(victim.infer, relay.addr, job(s, MAX))
  assert.ok(r.ok, String(r.error))
  const paid = (await claimAndRead(s, s.a, victim.account.address)) - before
  assert.is(paid, worth(r.tokens), 'paid == amountDue(prompt, delivered, signed price)')
  assert.is((await victim.wallet.channel(s.operator(s.a), s.adapterId)).owed - owedBefore, paid)
})

test.run()
