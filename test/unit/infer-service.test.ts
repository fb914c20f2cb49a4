// The infer handler over an in-memory stream pair (no sockets): the real codec, limits, receipts
// and client, with a stub in place of the engine's narrow ServingBackend interface.

import { setTimeout as sleep } from 'node:timers/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream, streamPair } from '@libp2p/utils'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { type ChainDomain, signVoucher, voucherHash } from '../../src/chain/eip712.ts'
import { InferClient, type InferInput } from '../../src/client/client.ts'
import { OpenLoraError } from '../../src/common/errors.ts'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import { sha256Hex } from '../../src/crypto/hash.ts'
import { decodeResponseFrame, encodeFrame, type ResponseFrame } from '../../src/protocols/infer/codec.ts'
import { MAX_REQUEST_FRAME_BYTES } from '../../src/protocols/infer/constants.ts'
import { InferError, ProtocolError } from '../../src/protocols/infer/errors.ts'
import type { PaymentGate } from '../../src/protocols/infer/gates.ts'
import { type InferInit, InferService } from '../../src/protocols/infer/infer.ts'
import type { GenerateRequest, ServingBackend, TokenEvent } from '../../src/serving/backend.ts'

const serverKey = await generateKeyPair('Ed25519')
const clientKey = await generateKeyPair('Ed25519')
const clientPeer = peerIdFromPrivateKey(clientKey)
const serverPeer = peerIdFromPrivateKey(serverKey).toString()
const operator = privateKeyToAccount(generatePrivateKey())

/** A stand-in engine: token i of a job is 10 + i; `delayMs` before each token; records signals. */
class StubBackend implements ServingBackend {
  delayMs = 0
  /** a misbehaving engine: tokens beyond maxNewTokens, or an index skipped */
  extraTokens = 0
  skipIndex = -1
  signals: AbortSignal[] = []
  models = () => [{ modelId: 'm', weightsHash: sha256Hex('w') }]
  adapterTier = (_model: string, _cid: string) => null
  load = () => ({ queueDepth: 0, freeSlots: 8 })
  busy = false
  generate(req: GenerateRequest): AsyncIterable<TokenEvent> {
    // like the engine: a full queue is refused at once, before any event
    if (this.busy) throw new OpenLoraError('BUSY', 'queue full', { retryAfterMs: 250 })
    return this.events(req)
  }
  async *events(req: GenerateRequest): AsyncIterable<TokenEvent> {
    if (req.signal) this.signals.push(req.signal)
    const promptIds = req.promptIds ?? [1, 2, 3]
    const out: number[] = []
    for (let i = 0; i < req.params.maxNewTokens + this.extraTokens; i++) {
      if (this.delayMs > 0) await sleep(this.delayMs)
      if (req.signal?.aborted) break
      if (i === this.skipIndex) continue
      out.push(10 + i)
      yield { type: 'token', id: 10 + i, text: `<${i}>`, index: i, atMs: 0 }
    }
    yield {
      type: 'done',
      finishReason: req.signal?.aborted ? 'abort' : 'length',
      promptIds,
      outputIds: out,
      text: out.map((_, i) => `<${i}>`).join(''),
      usage: { promptTokens: promptIds.length, outputTokens: out.length },
      timings: { queuedMs: 0, firstTokenMs: 0, totalMs: 0 }
    }
  }
}

function setup(init: InferInit = {}, payments?: PaymentGate) {
  const backend = new StubBackend()
  const host = {
    handle: async () => {},
    unhandle: async () => {},
    dialProtocol: async (): Promise<Stream> => {
      throw new Error('no network in unit tests')
    }
  }
  const service = new InferService(
    {
      host,
      peerId: serverPeer,
      privateKey: serverKey,
      operator,
      backend,
      payments: payments ? () => payments : undefined
    },
    { pricePer1kTokens: '2000', ...init }
  )
  const conn = { remotePeer: clientPeer } as unknown as Connection
  const open = async (): Promise<Stream> => {
    const [out, inb] = await streamPair()
    void service.handle(inb, conn)
    return out
  }
  const client = new InferClient({ peerId: clientPeer.toString(), privateKey: clientKey, dial: () => open() })
  return { backend, service, client, open }
}

const input: InferInput = { model: 'm', prompt: 'hello', params: { maxNewTokens: 4 } }

async function refusal(p: Promise<unknown>): Promise<InferError> {
  try {
    await p
  } catch (err) {
    assert.instance(err, InferError, String(err))
    return err as InferError
  }
  throw new Error('expected an InferError')
}

/** Sends raw bytes on a fresh stream and returns the frames the node answered with. */
async function raw(
  open: () => Promise<Stream>,
  bytes: Uint8Array,
  closeWrite = false
): Promise<ResponseFrame[]> {
  const s = await open()
  s.send(bytes)
  if (closeWrite) await s.close().catch(() => {})
  const lp = lpStream(s)
  const frames: ResponseFrame[] = []
  try {
    while (true)
      frames.push(decodeResponseFrame((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray()))
  } catch {}
  return frames
}

test('a job streams accepted, tokens and a result whose receipt verifies against what the client saw', async () => {
  const { client } = setup()
  const seen: string[] = []
  const r = await client.infer('x', input, {
    onToken: (t) => seen.push(t.text),
    onAccepted: (a) => seen.push(a.servedBy)
  })
  assert.equal(seen, [serverPeer, '<0>', '<1>', '<2>', '<3>'])
  assert.equal(r.outputIds, [10, 11, 12, 13])
  assert.ok(r.verification?.ok, JSON.stringify(r.verification))
  assert.is(r.receipt.body.peerId, serverPeer)
  assert.is(r.receipt.body.amountDue, '14') // ceil(7 tokens × 2000 / 1000)
})

async function rejectsWith(p: Promise<unknown>, re: RegExp): Promise<void> {
  const err = await p.then(
    (): Error => assert.unreachable('accepted') as never,
    (e: unknown) => e as Error
  )
  assert.instance(err, ProtocolError, String(err))
  assert.match(err.message, re)
}

test('the client refuses token frames beyond maxNewTokens or out of order (a node cannot stream without end)', async () => {
  const { backend, client } = setup()
  backend.extraTokens = 3
  await rejectsWith(client.infer('x', input), /more than the 4 tokens asked for/)
  backend.extraTokens = 0
  backend.skipIndex = 2
  await rejectsWith(client.infer('x', input), /token frame 3 arrived where 2 was due/)
  backend.skipIndex = -1
  assert.is((await client.infer('x', input)).outputIds.length, 4)
})

test('oversized, truncated and malformed frames end that stream only, with BAD_REQUEST where possible', async () => {
  const { client, open } = setup()
  // length prefix above the limit: refused before any body byte is buffered
  const big = new Uint8Array(8)
  let n = MAX_REQUEST_FRAME_BYTES + 1
  let i = 0
  while (n >= 0x80) {
    big[i++] = (n & 0x7f) | 0x80
    n >>>= 7
  }
  big[i++] = n
  const over = await raw(open, big.subarray(0, i))
  assert.is(over[0]?.t, 'error')
  assert.is((over[0] as { code: string }).code, 'BAD_REQUEST')
  // truncated: the prefix promises 100 bytes, 10 arrive, then the client closes its side
  const trunc = await raw(open, new Uint8Array([100, ...new Uint8Array(10)]), true)
  assert.is(trunc.length, 1)
  assert.is((trunc[0] as { code: string }).code, 'BAD_REQUEST')
  assert.match((trunc[0] as { message: string }).message, /EOF|closed/i)
  // well framed garbage
  const junk = encodeCanonical({ t: 'request', body: 1 })
  const mal = await raw(open, new Uint8Array([junk.length, ...junk]))
  assert.is((mal[0] as { code: string; message: string }).code, 'BAD_REQUEST')
  assert.match((mal[0] as { message: string }).message, /body/)
  // and the node still serves
  const r = await client.infer('x', input)
  assert.ok(r.verification?.ok)
})

test('a request signed by someone else, or naming another client, is refused', async () => {
  const { client, open } = setup()
  const req = await client.buildRequest(input)
  req.signature = new Uint8Array(64).fill(7)
  const bad = encodeFrame(req)
  const frames = await raw(open, new Uint8Array([...lenPrefix(bad.length), ...bad]))
  assert.is((frames[0] as { code: string }).code, 'BAD_REQUEST')
  assert.match((frames[0] as { message: string }).message, /signature/)
  const other = await generateKeyPair('Ed25519')
  const impostor = new InferClient({
    peerId: peerIdFromPrivateKey(other).toString(),
    privateKey: other,
    dial: () => open()
  })
  const e = await refusal(impostor.infer('x', input))
  assert.is(e.code, 'BAD_REQUEST')
  assert.match(e.message, /not the peer that sent/)
})

function lenPrefix(n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  out.push(n)
  return out
}

test('typed errors: unknown model, unknown adapter, deadline passed, prompt too long', async () => {
  const { client } = setup({ maxPromptTokens: 4 })
  assert.is((await refusal(client.infer('x', { ...input, model: 'nope' }))).code, 'MODEL_NOT_FOUND')
  const adapter = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
  assert.is((await refusal(client.infer('x', { ...input, adapter }))).code, 'ADAPTER_NOT_FOUND')
  assert.is((await refusal(client.infer('x', { ...input, timeoutMs: -1000 }))).code, 'DEADLINE_EXCEEDED')
  const long = await refusal(client.infer('x', { ...input, prompt: undefined, promptIds: [1, 2, 3, 4, 5] }))
  assert.is(long.code, 'BAD_REQUEST')
  assert.match(long.message, /at most 4/)
})

test('an engine that refuses with BUSY gives the client BUSY with its retry hint and no accepted frame', async () => {
  const { client, backend } = setup()
  backend.busy = true
  let accepted = 0
  const e = await refusal(client.infer('x', input, { onAccepted: () => accepted++ }))
  assert.is(e.code, 'BUSY')
  assert.is(e.retryAfterMs, 250)
  assert.is(accepted, 0)
})

test('per-peer limits: a second concurrent job gets RATE_LIMITED with a retry hint, never a crash', async () => {
  const { client, backend } = setup({ maxConcurrentJobsPerPeer: 1 })
  backend.delayMs = 30
  const first = client.infer('x', input)
  await sleep(20)
  const e = await refusal(client.infer('x', input))
  assert.is(e.code, 'RATE_LIMITED')
  assert.ok((e.retryAfterMs ?? 0) > 0)
  assert.ok((await first).verification?.ok)
})

test('closing the client stream cancels the job in the engine', async () => {
  const { client, backend, service } = setup()
  backend.delayMs = 20
  const ac = new AbortController()
  const p = client.infer(
    'x',
    { ...input, params: { maxNewTokens: 500 } },
    { signal: ac.signal, onToken: () => ac.abort() }
  )
  const e = await refusal(p)
  assert.is(e.code, 'DEADLINE_EXCEEDED')
  for (let i = 0; i < 100 && !backend.signals[0]?.aborted; i++) await sleep(10)
  assert.ok(backend.signals[0]?.aborted, 'the engine saw the abort')
  for (let i = 0; i < 100 && service.activeJobs > 0; i++) await sleep(10)
  assert.is(service.activeJobs, 0)
})

test('a slow job keeps its stream alive with progress frames', async () => {
  const { client, backend } = setup({ progressIntervalMs: 60 })
  backend.delayMs = 150
  let progress = 0
  const r = await client.infer(
    'x',
    { ...input, params: { maxNewTokens: 2 } },
    { onProgress: () => progress++ }
  )
  assert.ok(progress >= 1, `progress frames: ${progress}`)
  assert.ok(r.verification?.ok)
})

test('a paid job: no voucher is PAYMENT_REQUIRED; a voucher is checked first, stored before the result, hashed into the receipt', async () => {
  const domain: ChainDomain = { chainId: 161201, settlement: '0x00000000000000000000000000000000000000aa' }
  const calls: string[] = []
  let checked: { adapterId: string; maxAmountDue: bigint } | undefined
  const gate: PaymentGate = {
    domain,
    checkVoucher: async (_v, job) => {
      calls.push('check')
      checked = job
      if (job.maxAmountDue > 1000n) throw new OpenLoraError('UNDERPAID', 'voucher too small')
    },
    recordPayment: async (_v, r) => {
      calls.push(`record ${r.amountDue}`)
    },
    // the node's path: check and reserve before any work, record as tokens go, finish before the result
    openJob: async (v, job) => {
      await gate.checkVoucher(v, job)
      return {
        delivered: async () => {},
        finish: async (r) => {
          calls.push(`record ${r.amountDue}`)
        },
        end: async () => {
          calls.push('end')
        }
      }
    }
  }
  const { client } = setup({}, gate)
  const payer = privateKeyToAccount(generatePrivateKey())
  const voucher = await signVoucher(payer, domain, {
    node: operator.address,
    adapterId: `0x${'00'.repeat(32)}`,
    cumulativeAmount: 5000n
  })
  const wire = { ...voucher, cumulativeAmount: voucher.cumulativeAmount.toString() }
  const free = await refusal(client.infer('x', input))
  assert.is(free.code, 'PAYMENT_REQUIRED')
  const r = await client.infer(
    'x',
    { ...input, promptIds: [1, 2, 3], prompt: undefined, voucher: wire },
    {
      onToken: () => calls.push('token')
    }
  )
  assert.ok(r.verification?.ok, JSON.stringify(r.verification))
  assert.is(checked?.maxAmountDue, 14n) // ceil((3 + 4) × 2000 / 1000): the worst case, paid ahead
  assert.equal(calls, ['check', 'token', 'token', 'token', 'token', 'record 14'])
  assert.is(r.receipt.body.voucher, voucherHash(domain, voucher))
  assert.equal(r.receipt.eip712, { chainId: 161201, verifyingContract: domain.settlement })
  const big = await refusal(
    client.infer('x', {
      ...input,
      promptIds: [1],
      prompt: undefined,
      params: { maxNewTokens: 4000 },
      voucher: wire
    })
  )
  assert.is(big.code, 'PAYMENT_REQUIRED')
  assert.match(big.message, /^UNDERPAID: /)
})

test.run()
