import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { InferError } from '../../src/protocols/infer/errors.ts'
import { CandidateFailures } from '../../src/protocols/infer/failover.ts'
import {
  type LocalState,
  type PeerDirectory,
  type PlanInput,
  planRoute,
  type RoutingPeer,
  UnreachablePeers,
  whyNoRoute
} from '../../src/protocols/routing/router.ts'
import { AdmissionError, PeerLimits } from '../../src/protocols/shared/limits.ts'

type Peer = RoutingPeer & { models: string[]; adapters: Record<string, 'hot' | 'warm' | 'cold'> }

/** A PeerTable stand-in with the query semantics the router relies on. */
function directory(peers: Peer[]): PeerDirectory {
  return {
    query(q) {
      const ex = new Set(q.exclude ?? [])
      return peers
        .filter((p) => !ex.has(p.peerId))
        .filter((p) => q.model === undefined || p.models.includes(q.model))
        .filter((p) => q.adapter === undefined || p.adapters[q.adapter] !== undefined)
        .map((p) => ({ ...p, tier: q.adapter === undefined ? null : p.adapters[q.adapter]! }))
    }
  }
}

const peer = (peerId: string, over: Partial<Peer> = {}): Peer => ({
  peerId,
  tier: null,
  advert: { queueDepth: 0, freeSlots: 4, pricePer1kTokens: '0' },
  models: ['m'],
  adapters: {},
  ...over
})

const local = (over: Partial<LocalState> = {}): LocalState => ({
  hasModel: true,
  tier: null,
  queueDepth: 0,
  freeSlots: 4,
  pricePer1kTokens: '0',
  ...over
})

const input = (over: Partial<PlanInput>): PlanInput => ({
  self: 'self',
  client: 'client',
  model: 'm',
  adapter: 'A',
  route: [],
  maxHops: 2,
  local: local(),
  peers: directory([]),
  ...over
})

test('adapter hot elsewhere beats this node holding it cold', () => {
  const peers = directory([peer('p1', { adapters: { A: 'hot' } }), peer('p2', { adapters: { A: 'warm' } })])
  const plan = planRoute(input({ local: local({ tier: 'cold' }), peers }))
  assert.equal(
    plan.map((t) => (t.kind === 'local' ? 'local' : t.peerId)),
    ['p1', 'p2', 'local']
  )
})

test('same tier: queue depth, then price, then this node, then latency', () => {
  const peers = directory([
    peer('busy', { adapters: { A: 'hot' }, advert: { queueDepth: 5, freeSlots: 1, pricePer1kTokens: '0' } }),
    peer('dear', { adapters: { A: 'hot' }, advert: { queueDepth: 0, freeSlots: 1, pricePer1kTokens: '9' } }),
    peer('far', { adapters: { A: 'hot' } }),
    peer('near', { adapters: { A: 'hot' } })
  ])
  const lat: Record<string, number> = { far: 50, near: 2 }
  const plan = planRoute(
    input({ local: local({ tier: 'hot' }), peers, latencyMs: (p) => lat[p], maxCandidates: 5 })
  )
  assert.equal(
    plan.map((t) => (t.kind === 'local' ? 'local' : t.peerId)),
    ['local', 'near', 'far', 'dear', 'busy']
  )
})

test('a peer a dial just failed on goes behind every other candidate, and back once reached', () => {
  const peers = directory([
    peer('dead', { adapters: { A: 'hot' } }),
    peer('cold', { adapters: { A: 'cold' } })
  ])
  const gone = new UnreachablePeers(10_000)
  const order = (now: number) =>
    planRoute(input({ local: local({ hasModel: false }), peers, unreachable: (p) => gone.has(p, now) })).map(
      (t) => (t.kind === 'local' ? 'local' : t.peerId)
    )
  assert.equal(order(0), ['dead', 'cold'], 'hot first while it answers')
  gone.failed('dead', 1_000)
  assert.equal(order(1_000), ['cold', 'dead'], 'still planned, last: a peer that came back is found')
  assert.equal(order(11_001), ['dead', 'cold'], 'forgotten after its time')
  gone.failed('dead', 20_000)
  gone.reached('dead')
  assert.equal(order(20_001), ['dead', 'cold'], 'a dial that worked clears it at once')
})

test('failed candidates: one that answered says more than an unreachable one; none reached names all', () => {
  const gone = new UnreachablePeers()
  const down = (p: string) => new InferError('PEER_UNREACHABLE', `could not dial ${p}`, { peer: p })
  const all = new CandidateFailures(gone)
  all.add(down('p1'), 'p1')
  all.add(down('p2'), 'p2')
  const e = all.final()
  assert.is(e.code, 'PEER_UNREACHABLE')
  assert.match(e.message, /any of the 2 serving peers \(p1, p2\).*none charged it/)
  assert.equal(e.data.peers, ['p1', 'p2'])
  assert.ok(gone.has('p1') && gone.has('p2'))
  const mixed = new CandidateFailures(gone)
  mixed.add(new InferError('BUSY', 'full', { retryAfterMs: 250 }), 'p3')
  mixed.add(down('p1'), 'p1')
  assert.is(mixed.final().code, 'BUSY', 'p3 was reached: not PEER_UNREACHABLE, the job may have been seen')
  // a PEER_UNREACHABLE relayed by p2 is about a peer further on: p2 itself answered
  gone.failed('p2')
  const relayed = new CandidateFailures(gone)
  relayed.add(new InferError('PEER_UNREACHABLE', 'p2: could not dial p9', { retryAfterMs: 1000 }), 'p2')
  assert.not.ok(gone.has('p2'))
  assert.is(relayed.final().message, 'p2: could not dial p9')
})

test('a node without the adapter fetches it when no peer can serve it, from peers that hold it', () => {
  // 'src' holds the adapter but not the base model: not a server, but a source of bytes
  const peers = directory([peer('src', { models: ['other'], adapters: { A: 'cold' } })])
  const plan = planRoute(input({ peers }))
  assert.equal(plan, [{ kind: 'local', fetchFrom: ['src'] }])
})

test('never revisits, never forwards to the client, only local once the hop budget is spent', () => {
  const peers = directory([
    peer('entry', { adapters: { A: 'hot' } }),
    peer('client', { adapters: { A: 'hot' } }),
    peer('p3', { adapters: { A: 'hot' } })
  ])
  const plan = planRoute(input({ route: ['entry'], peers, local: local({ tier: 'cold' }) }))
  assert.equal(
    plan.map((t) => (t.kind === 'local' ? 'local' : t.peerId)),
    ['p3', 'local']
  )
  const spent = planRoute(input({ route: ['entry', 'p3'], peers, local: local({ tier: 'cold' }) }))
  assert.equal(spent, [{ kind: 'local', fetchFrom: [] }])
})

test('a voucher pins the job to nodes of the operator it pays', () => {
  const op = (operator: string) => ({ queueDepth: 0, freeSlots: 4, pricePer1kTokens: '0', operator })
  const peers = directory([
    peer('hotButUnpaid', { adapters: { A: 'hot' }, advert: op('0xBBBB') }),
    peer('paid', { adapters: { A: 'cold' }, advert: op('0xaaaa') })
  ])
  const plan = planRoute(
    input({ peers, payTo: '0xAAAA', selfOperator: '0xcccc', local: local({ tier: 'hot' }) })
  )
  assert.equal(
    plan.map((t) => (t.kind === 'local' ? 'local' : t.peerId)),
    ['paid']
  )
  const mine = planRoute(
    input({ peers, payTo: '0xcccc', selfOperator: '0xCCCC', local: local({ tier: 'hot' }) })
  )
  assert.equal(mine, [{ kind: 'local', fetchFrom: [] }])
})

test('whyNoRoute names the missing model, the missing adapter, or a full node', () => {
  const none = input({ local: local({ hasModel: false }) })
  assert.equal(planRoute(none), [])
  assert.is(whyNoRoute(none), 'MODEL_NOT_FOUND')
  const noAdapter = input({})
  assert.equal(planRoute(noAdapter), [])
  assert.is(whyNoRoute(noAdapter), 'ADAPTER_NOT_FOUND')
  const full = input({ adapter: null, local: local({ freeSlots: 0 }) })
  assert.is(whyNoRoute(full), 'BUSY')
})

test('per-peer limits: concurrency and rate give RATE_LIMITED, the node cap gives BUSY', () => {
  let now = 0
  const limits = new PeerLimits({
    maxConcurrentJobsPerPeer: 2,
    requestsPerSecondPerPeer: 10,
    requestBurstPerPeer: 3,
    maxConcurrentJobs: 3,
    now: () => now
  })
  const r1 = limits.admit('a')
  const r2 = limits.admit('a')
  const e = (() => {
    try {
      limits.admit('a')
    } catch (err) {
      return err as AdmissionError
    }
  })()
  assert.instance(e, AdmissionError)
  assert.is(e!.code, 'RATE_LIMITED')
  r1()
  r1() // releasing twice counts once
  limits.admit('a')() // third token of the burst
  const rate = (() => {
    try {
      limits.admit('a')
    } catch (err) {
      return err as AdmissionError
    }
  })()
  assert.is(rate!.code, 'RATE_LIMITED')
  assert.ok(rate!.retryAfterMs! > 0 && rate!.retryAfterMs! <= 100)
  now += 1000
  limits.admit('b')
  limits.admit('c')
  const busy = (() => {
    try {
      limits.admit('d')
    } catch (err) {
      return err as AdmissionError
    }
  })()
  assert.is(busy!.code, 'BUSY')
  r2()
  assert.is(limits.active, 2)
})

test.run()
