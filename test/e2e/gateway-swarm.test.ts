// The gateway as a client of the network (issue 18): node G serves nothing, its gateway lists the
// model node S serves (from G's PeerTable), and jobs sent to G's OpenAI API run on S, which
// charges. G pays from its gateway wallet (gateway.payer), depositing into S's escrow on demand
// within gateway.maxSpend; the receipt it returns verifies (also with `openlora verify`), and a
// gateway whose budget is too small answers 402. Real anvil, libp2p, engine and ONNX Runtime.
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Address } from 'viem'
import { ChainClient } from '../../src/chain/client.ts'
import { requireService } from '../../src/common/service.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { type Receipt, verifyReceipt } from '../../src/protocols/infer/receipt.ts'
import { addrOf, type Fixtures, makeFixtures, runCli, serving, startNode, until } from './infer-fixture.ts'

const OPEN = 10n ** 18n
const PRICE = (OPEN / 1000n).toString() // 0.001 OPEN per 1k tokens
const root = await mkdtemp(join(tmpdir(), 'gateway-swarm-'))
let fx: Fixtures
let s: OpenLoraNode // serves the model and charges
let g: OpenLoraNode // relay-only entry with a paying gateway
let poor: OpenLoraNode // relay-only entry whose gateway budget is 1 wei
let model = ''
let payer: Address

interface Ext {
  openlora: { receipt: Receipt; node: { peerId: string; route: string[] }; paid: string }
}

test.before(async () => {
  fx = await makeFixtures(root, 0)
  s = await startNode(root, 's', fx, {
    price: PRICE,
    config: { chain: { preset: 'local', claimIntervalSec: 3600 } }
  })
  model = serving(s).models()[0]!.modelId
  const ep = JSON.parse(readFileSync(join(root, 's', 'chain.json'), 'utf8'))
  const local = requireService(s.services, 'chain').localChain!
  const keyFile = join(root, 'payer.key')
  await writeFile(keyFile, `${local.privateKeys[3]!}\n`, { mode: 0o600 })
  payer = local.accounts[3]!.address
  const chain = { rpcUrl: ep.rpcUrl, chainId: ep.chainId, addresses: ep.addresses }
  g = await startNode(root, 'g', fx, {
    serve: false,
    bootstrap: [addrOf(s)],
    config: { chain, 'gateway.payer': keyFile, 'gateway.maxSpend': (1n * OPEN).toString() }
  })
  // its own wallet: two wallets signing on one channel would race each other's maxima
  const poorKey = join(root, 'poor.key')
  await writeFile(poorKey, `${local.privateKeys[4]!}\n`, { mode: 0o600 })
  poor = await startNode(root, 'poor', fx, {
    serve: false,
    bootstrap: [addrOf(s)],
    config: { chain, 'gateway.payer': poorKey, 'gateway.maxSpend': '1' }
  })
  await until(
    'the entries see the serving node',
    () => [g, poor].every((n) => n.peerTable.get(s.peerId) !== undefined),
    20_000
  )
})

test.after(async () => {
  for (const n of [poor, g, s]) await n?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

const client = (n: OpenLoraNode) =>
  new OpenAI({
    baseURL: `${n.services.gateway!.url!}/v1`,
    apiKey: 'loopback',
    maxRetries: 0,
    timeout: 60_000
  })

test('the entry’s gateway lists the model a peer serves, with that peer and its price', async () => {
  const m = (await client(g).models.list()).data.find((x) => x.id === model) as unknown as {
    openlora: { nodes: { peerId: string; pricePer1kTokens: string }[]; local: string | null }
  }
  assert.ok(m, 'the peer’s model is listed')
  assert.is(m.openlora.local, null)
  assert.equal(
    m.openlora.nodes.map((n) => [n.peerId, n.pricePer1kTokens]),
    [[s.peerId, PRICE]]
  )
})

test('a job through the gateway runs on the peer, paid from the gateway wallet; the receipt verifies', async () => {
  const chainS = requireService(s.services, 'chain')
  const before = (
    await new ChainClient({ ...chainS.endpoint }).escrowOf(payer, s.identity.operator.address as Address)
  ).balance
  const r = await client(g).chat.completions.create({
    model,
    messages: [{ role: 'user', content: 'Pay for me' }],
    max_tokens: 8,
    temperature: 0
  })
  const ext = (r as unknown as Ext).openlora
  assert.is(ext.node.peerId, s.peerId)
  assert.equal(ext.node.route, [g.peerId, s.peerId])
  const b = ext.receipt.body
  assert.is(b.pricePer1kTokens, PRICE)
  assert.ok(BigInt(b.amountDue) > 0n)
  assert.is(ext.paid, b.amountDue)
  assert.ok(b.voucher !== null, 'the receipt names the voucher it was paid with')
  const v = await verifyReceipt(ext.receipt, {
    peerId: s.peerId,
    modelId: model,
    domain: { chainId: chainS.domain.chainId, verifyingContract: chainS.domain.settlement }
  })
  assert.ok(v.ok, JSON.stringify(v))
  const after = (
    await new ChainClient({ ...chainS.endpoint }).escrowOf(payer, s.identity.operator.address as Address)
  ).balance
  assert.ok(after > before, 'the gateway deposited into the serving node’s escrow on demand')
  assert.ok(after - before <= OPEN, 'within gateway.maxSpend')
  const file = join(root, 'receipt.json')
  await writeFile(file, JSON.stringify({ receipt: ext.receipt }))
  const cli = await runCli('verify', file)
  assert.is(cli.code, 0, cli.out + cli.err)
})

test('a streamed paid job carries the receipt on its final chunk', async () => {
  const stream = await client(g).completions.create({
    model,
    prompt: 'Stream and pay',
    max_tokens: 6,
    temperature: 0,
    stream: true
  })
  let ext: Ext['openlora'] | undefined
  for await (const c of stream) if (c.choices[0]?.finish_reason) ext = (c as unknown as Ext).openlora
  assert.ok(ext)
  assert.is(ext!.node.peerId, s.peerId)
  assert.ok(BigInt(ext!.paid) > 0n)
})

test('a gateway whose budget cannot cover the job answers 402', async () => {
  try {
    await client(poor).completions.create({ model, prompt: 'too poor', max_tokens: 8 })
    assert.unreachable('the budget must stop the job')
  } catch (err) {
    assert.instance(err, OpenAI.APIError)
    assert.is((err as InstanceType<typeof OpenAI.APIError>).status, 402)
    assert.is((err as InstanceType<typeof OpenAI.APIError>).code, 'budget_exhausted')
  }
})

test.run()
