// GET /metrics of real nodes under real traffic (issue 19): S serves the model with its adapter
// registered on a real anvil chain and charges; G serves nothing and pays from its gateway wallet,
// so every job sent to G's OpenAI API (the official `openai` client) is forwarded to S; F serves
// the model and fetches the adapter from S by CID. Each node's /metrics (gateway port and admin
// port) lists every family the issue names, and the counters and histograms move with the jobs,
// the fetch and the claim. Real libp2p, engine, ONNX Runtime, LevelDB and anvil.
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Hex } from 'viem'
import { ChainClient } from '../../src/chain/client.ts'
import { splitPayment } from '../../src/chain/shares.ts'
import { requireService } from '../../src/common/service.ts'
import { cidDigest } from '../../src/crypto/cid.ts'
import { toHex } from '../../src/crypto/hash.ts'
import { NodeMetrics } from '../../src/metrics/registry.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { parseProm, value } from '../helpers/prom.ts'
import { addrOf, type Fixtures, makeFixtures, sees, serving, startNode, until } from './infer-fixture.ts'

const OPEN = 10n ** 18n
const PRICE = (OPEN / 1000n).toString()
const root = await mkdtemp(join(tmpdir(), 'metrics-e2e-'))
let fx: Fixtures
let s: OpenLoraNode
let g: OpenLoraNode
let f: OpenLoraNode
let model = ''
let cid = ''

/** every family issue 19 names (the registry may add more; it may not drop one of these) */
const ISSUE_FAMILIES = [
  'openlora_requests_total',
  'openlora_time_to_first_token_seconds',
  'openlora_inter_token_latency_seconds',
  'openlora_e2e_request_latency_seconds',
  'openlora_prompt_tokens_total',
  'openlora_generation_tokens_total',
  'openlora_num_requests_waiting',
  'openlora_num_requests_running',
  'openlora_batch_size',
  'openlora_adapters',
  'openlora_adapter_loads_total',
  'openlora_adapter_load_seconds',
  'openlora_adapter_fetches_total',
  'openlora_adapter_fetch_bytes_total',
  'openlora_adapter_evictions_total',
  'openlora_kv_cache_usage_ratio',
  'openlora_lora_slot_pool_usage_ratio',
  'openlora_peers_connected',
  'openlora_connections',
  'openlora_reachability',
  'openlora_peer_table_size',
  'openlora_adverts_received_total',
  'openlora_adverts_accepted_total',
  'openlora_adverts_rejected_total',
  'openlora_routing_forwards_total',
  'openlora_routing_failovers_total',
  'openlora_vouchers_held',
  'openlora_vouchers_unclaimed_open',
  'openlora_claims_total',
  'openlora_claim_gas_used_total',
  'openlora_earnings_open_total',
  'openlora_attribution_seconds',
  'openlora_process_cpu_seconds_total',
  'openlora_nodejs_heap_size_used_bytes',
  'openlora_gateway_requests_total'
]

const gatewayMetrics = async (n: OpenLoraNode): Promise<string> => {
  const res = await fetch(`${n.services.gateway!.url!}/metrics`)
  assert.is(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  return res.text()
}

const adminMetrics = async (n: OpenLoraNode): Promise<string> => {
  const info = JSON.parse(readFileSync(join(n.dataDir.path, 'admin.json'), 'utf8')) as {
    url: string
    token: string
  }
  const denied = await fetch(`${info.url}/metrics`)
  assert.is(denied.status, 401, 'the admin port wants its token for /metrics too')
  const res = await fetch(`${info.url}/metrics`, { headers: { authorization: `Bearer ${info.token}` } })
  assert.is(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  return res.text()
}

test.before(async () => {
  fx = await makeFixtures(root, 1)
  s = await startNode(root, 's', fx, {
    price: PRICE,
    admin: true,
    config: { chain: { preset: 'local', claimIntervalSec: 3600 } }
  })
  const chain = requireService(s.services, 'chain')
  const local = chain.localChain!
  model = serving(s).models()[0]!.modelId
  cid = (await serving(s).store()!.import(fx.adapterDirs[0]!)).cid
  // a paid job on an adapter needs the adapter registered on-chain (H3)
  await new ChainClient({ ...chain.endpoint, account: local.accounts[1]! }).registerAdapter({
    adapterId: toHex(cidDigest(cid)) as Hex,
    modelHash: serving(s).models()[0]!.weightsHash,
    feePer1kTokens: 0n
  })
  const keyFile = join(root, 'payer.key')
  await writeFile(keyFile, `${local.privateKeys[3]!}\n`, { mode: 0o600 })
  const ep = chain.endpoint
  g = await startNode(root, 'g', fx, {
    serve: false,
    admin: true,
    bootstrap: [addrOf(s)],
    config: {
      chain: { rpcUrl: ep.rpcUrl, chainId: ep.chainId, addresses: ep.addresses },
      'gateway.payer': keyFile,
      'gateway.maxSpend': OPEN.toString()
    }
  })
  await until('G sees S holding the adapter', () => sees(g, s, cid, ['cold', 'warm', 'hot']), 30_000)
})

test.after(async () => {
  for (const n of [f, g, s]) await n?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

test('the gateway and admin ports serve every family the issue names, all openlora_', async () => {
  for (const n of [s, g]) {
    const viaGateway = parseProm(await gatewayMetrics(n)).types
    const viaAdmin = parseProm(await adminMetrics(n)).types
    for (const name of ISSUE_FAMILIES) {
      assert.ok(viaGateway.has(name), `gateway /metrics lacks ${name}`)
      assert.ok(viaAdmin.has(name), `admin /metrics lacks ${name}`)
    }
    // one registry behind both ports, and the same families the registry declares
    assert.equal([...viaGateway.keys()].sort(), [...viaAdmin.keys()].sort())
    const declared = (await new NodeMetrics().registry.getMetricsAsJSON()).map((m) => m.name).sort()
    assert.equal([...viaGateway.keys()].sort(), declared)
    for (const name of viaGateway.keys()) assert.ok(name.startsWith('openlora_'), name)
  }
  assert.is(value(await gatewayMetrics(s), 'openlora_requests_total'), 0, 'no job yet')
})

test('jobs through the gateway move the serving, routing, payment and HTTP metrics', async () => {
  const before = { s: await gatewayMetrics(s), g: await gatewayMetrics(g) }
  const openai = new OpenAI({
    baseURL: `${g.services.gateway!.url!}/v1`,
    apiKey: 'loopback',
    maxRetries: 0,
    timeout: 60_000
  })
  await openai.chat.completions.create({
    model: cid,
    messages: [{ role: 'user', content: 'Count what you see.' }],
    max_tokens: 8,
    temperature: 0
  })
  const stream = await openai.completions.create({
    model: cid,
    prompt: 'Stream it',
    max_tokens: 6,
    temperature: 0,
    stream: true
  })
  for await (const _ of stream);
  await openai.chat.completions.create({
    model,
    messages: [{ role: 'user', content: 'Base model' }],
    max_tokens: 5,
    temperature: 0
  })
  const after = { s: await gatewayMetrics(s), g: await adminMetrics(g) }
  const moved = (node: 's' | 'g', name: string, labels: Record<string, string> = {}) =>
    value(after[node], name, labels) - value(before[node], name, labels)

  // S served three jobs: two on the adapter (its own label), one on the base model
  assert.is(moved('s', 'openlora_requests_total', { outcome: 'success' }), 3)
  assert.is(moved('s', 'openlora_requests_total', { adapter: cid, model, outcome: 'success' }), 2)
  assert.is(moved('s', 'openlora_requests_total', { adapter: 'base', model }), 1)
  assert.is(moved('s', 'openlora_time_to_first_token_seconds_count', { model }), 3)
  assert.is(moved('s', 'openlora_e2e_request_latency_seconds_count', { model, outcome: 'success' }), 3)
  assert.ok(moved('s', 'openlora_e2e_request_latency_seconds_sum') > 0)
  assert.ok(moved('s', 'openlora_inter_token_latency_seconds_count') >= 3, 'several tokens per job')
  assert.ok(moved('s', 'openlora_prompt_tokens_total', { adapter: cid }) > 0)
  assert.ok(moved('s', 'openlora_generation_tokens_total', { adapter: cid }) >= 2)
  assert.ok(moved('s', 'openlora_batch_size_count', { model }) > 0, 'engine steps observed')
  assert.ok(
    moved('s', 'openlora_adapter_loads_total', { tier: 'cold' }) >= 1,
    'the adapter left the disk once'
  )
  assert.ok(moved('s', 'openlora_adapter_load_seconds_count') >= 1)
  assert.is(moved('s', 'openlora_attribution_seconds_count'), 3)
  assert.ok(value(after.s, 'openlora_adapters', { tier: 'hot' }) >= 1)
  assert.ok(value(after.s, 'openlora_lora_slot_pool_usage_ratio', { model }) > 0)
  assert.is(value(after.s, 'openlora_num_requests_running', { model }), 0, 'idle again')
  assert.is(value(after.s, 'openlora_kv_cache_usage_ratio', { model }), 0)
  // paid from G's wallet: S holds vouchers it has not claimed
  assert.ok(value(after.s, 'openlora_vouchers_held') >= 1)
  assert.ok(value(after.s, 'openlora_vouchers_unclaimed_open') > 0)
  // G forwarded each job and answered each HTTP request
  assert.is(moved('g', 'openlora_routing_forwards_total', { outcome: 'success' }), 3)
  assert.is(
    moved('g', 'openlora_gateway_requests_total', { route: '/v1/chat/completions', status: '200' }),
    2
  )
  assert.ok(moved('g', 'openlora_gateway_tokens_total', { kind: 'completion' }) > 0)
  assert.is(value(after.g, 'openlora_requests_total'), 0, 'G served nothing itself')
  // the network view
  for (const t of [after.s, after.g]) {
    assert.ok(value(t, 'openlora_peers_connected') >= 1)
    assert.ok(value(t, 'openlora_connections', { kind: 'direct' }) >= 1)
    assert.is(value(t, 'openlora_connections', { kind: 'relayed' }), 0)
    // nodes on loopback: no public address, no relay reservation
    assert.is(value(t, 'openlora_reachability', { state: 'local' }), 1)
    assert.is(
      value(t, 'openlora_reachability', { state: 'public' }) +
        value(t, 'openlora_reachability', { state: 'relayed' }),
      0
    )
    assert.ok(value(t, 'openlora_peer_table_size') >= 1)
    assert.ok(value(t, 'openlora_adverts_accepted_total') >= 1)
    assert.ok(value(t, 'openlora_adverts_received_total') >= value(t, 'openlora_adverts_accepted_total'))
  }
  assert.ok(value(after.s, 'openlora_process_cpu_seconds_total') > 0)
})

test('a fetch by CID counts the adapter and its bytes', async () => {
  // started only now: a free node serving the model would have taken G's jobs above
  f = await startNode(root, 'f', fx, { bootstrap: [addrOf(s)] })
  const before = await gatewayMetrics(f)
  await requireService(f.services, 'adapterExchange').fetch(cid, [s.peerId], { model })
  const after = await gatewayMetrics(f)
  assert.is(
    value(after, 'openlora_adapter_fetches_total', { adapter: cid, outcome: 'success' }) -
      value(before, 'openlora_adapter_fetches_total', { adapter: cid, outcome: 'success' }),
    1
  )
  assert.ok(
    value(after, 'openlora_adapter_fetch_bytes_total') - value(before, 'openlora_adapter_fetch_bytes_total') >
      1000
  )
  assert.ok(
    value(after, 'openlora_adapters', { tier: 'cold' }) >= 1,
    'the fetched adapter sits in the cold tier'
  )
})

test('a claim counts as sent and confirmed, with its gas and the earnings by role', async () => {
  const before = await gatewayMetrics(s)
  const [outcome] = await requireService(s.services, 'chain').claimer.claimNow()
  assert.ok(outcome, 'something was claimed')
  const after = await adminMetrics(s)
  const moved = (name: string, labels: Record<string, string> = {}) =>
    value(after, name, labels) - value(before, name, labels)
  assert.is(moved('openlora_claims_total', { outcome: 'sent' }), 1)
  assert.is(moved('openlora_claims_total', { outcome: 'confirmed' }), 1)
  assert.is(moved('openlora_claim_gas_used_total', { outcome: 'confirmed' }), Number(outcome!.gasUsed))
  // the roles' earnings are the contract's split of the claimed increases (sum of the split = total)
  const split = splitPayment(outcome!.total)
  const close = (got: number, want: bigint) => Math.abs(got - Number(want) / 1e18) < 1e-9
  assert.ok(close(moved('openlora_earnings_open_total', { role: 'operator' }), split.node), 'operator share')
  assert.ok(moved('openlora_earnings_open_total', { role: 'adapter_owner' }) > 0, 'the adapter owner earned')
  assert.ok(moved('openlora_earnings_open_total', { role: 'pool' }) >= 0)
  assert.is(value(after, 'openlora_vouchers_held'), 0, 'nothing left to claim')
  assert.is(value(after, 'openlora_vouchers_unclaimed_open'), 0)
})

test.run()
