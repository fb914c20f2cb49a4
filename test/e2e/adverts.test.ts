import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { ADVERTS_TOPIC, MAX_ADVERT_BYTES } from '../../src/protocols/adverts/constants.ts'
import { StaticCapabilitySource } from '../../src/serving/capability.ts'
import { fakeCids, testAdvert, testCaps, testPeer } from '../unit/advert-fixture.ts'
import { converged, type Swarm, startSwarm, waitFor } from './node-fixture.ts'

let swarm: Swarm
let nodes: OpenLoraNode[]

const sum = (f: (n: OpenLoraNode) => number, among = nodes): number => among.reduce((a, n) => a + f(n), 0)
const rejected = (reason: string) => (n: OpenLoraNode) =>
  (n.adverts.stats.rejected as Record<string, number>)[reason] ?? 0
const scoreOf = (at: OpenLoraNode, of: OpenLoraNode): number =>
  (at.libp2p.services.pubsub as unknown as { getScore(id: string): number }).getScore(of.peerId)
const ignored = (reason: string) => (n: OpenLoraNode) =>
  (n.adverts.stats.ignored as Record<string, number>)[reason] ?? 0

test.before(async () => {
  swarm = await startSwarm(5)
  nodes = swarm.nodes
})
test.after(async () => {
  await swarm.stop()
})

test('5 in-process nodes converge: every table holds every other advert', async () => {
  await waitFor(() => converged(nodes), 30_000, 'convergence of 5 nodes')
  for (const n of nodes) assert.is(n.peerTable.size, 4)
  // adverts carry addresses, so the nodes joined through node 0 connect to each other too
  await waitFor(() => nodes.every((n) => n.libp2p.getPeers().length === 4), 30_000, 'full mesh')
})

test('a capability change reaches every other node, and queries find it', async () => {
  const src = new StaticCapabilitySource(testCaps())
  const n2 = nodes[2]!
  n2.capabilities.use(src)
  const adapter = fakeCids(1, 'e2e')[0]!
  src.update({ adapters: { hot: [adapter], warm: [], cold: fakeCids(500, 'c') }, freeSlots: 3 })
  await waitFor(
    () => nodes.every((n) => n === n2 || n.peerTable.query({ adapter }).some((m) => m.peerId === n2.peerId)),
    30_000,
    'updated advert everywhere'
  )
  const m = nodes[0]!.peerTable.query({ adapter })[0]!
  assert.is(m.tier, 'hot')
  assert.is(m.advert.freeSlots, 3)
  assert.is(m.advert.adapters.cold.count, 500)
})

// before the forgery tests: after them the attacker is (rightly) cut off from our publications
test('a replayed (older) advert is ignored and the newer one kept', async () => {
  const n1 = nodes[1]!
  const old = n1.adverts.current!
  const fresh = await n1.adverts.publish()
  await waitFor(
    () => nodes.every((n) => n === n1 || (n.peerTable.latestSeq(n1.peerId) ?? 0) >= fresh.body.seq),
    30_000,
    'fresh advert everywhere'
  )
  const before = sum(ignored('stale-sequence'))
  await n1.libp2p.services.pubsub.publish(ADVERTS_TOPIC, old.bytes)
  await waitFor(() => sum(ignored('stale-sequence')) > before, 30_000, 'replay ignored')
  await new Promise((r) => setTimeout(r, 300))
  // (n1 may have re-published meanwhile; what matters is that nothing went back to the old one)
  for (const n of nodes) if (n !== n1) assert.ok(n.peerTable.latestSeq(n1.peerId)! >= fresh.body.seq)
})

test('a forged advert (another peer id, or a bad signature) is accepted by no node', async () => {
  const attacker = nodes[4]!
  const victim = nodes[1]!
  const stranger = await testPeer()
  const bad = (n: OpenLoraNode): number => rejected('from-mismatch')(n) + rejected('bad-signature')(n)
  const before = new Map(nodes.map((n) => [n, bad(n)]))
  // 1. a well-signed advert of a stranger, published by the attacker
  const strangerAdvert = await testAdvert(stranger)
  await attacker.libp2p.services.pubsub.publish(ADVERTS_TOPIC, strangerAdvert.bytes)
  // 2. the victim's identity in the body, but signed by the attacker's key
  const victimBody = {
    ...victim.adverts.current!.body,
    seq: victim.adverts.current!.body.seq + 1000,
    freeSlots: 99
  }
  const forgedSig = await attacker.identity.privateKey.sign(
    encodeCanonical({ domain: 'openlora/advert/1', body: victimBody })
  )
  await attacker.libp2p.services.pubsub.publish(
    ADVERTS_TOPIC,
    encodeCanonical({ body: victimBody, sig: forgedSig })
  )
  // 3. the attacker's own advert with its body changed after signing
  const own = attacker.adverts.current!
  const tampered = { ...own.body, seq: own.body.seq + 1000, ts: own.body.ts + 1000, freeSlots: 1000 }
  await attacker.libp2p.services.pubsub.publish(
    ADVERTS_TOPIC,
    encodeCanonical({ body: tampered, sig: own.sig })
  )
  const others = nodes.filter((n) => n !== attacker)
  // the attacker floods its own publications to every peer it is connected to (all of them)
  await waitFor(() => others.every((n) => bad(n) >= before.get(n)! + 3), 30_000, 'rejections at every node')
  // gossipsub caches scores for a heartbeat (1 s)
  await new Promise((r) => setTimeout(r, 1_200))
  const score = (n: OpenLoraNode): number => scoreOf(n, attacker)
  for (const n of others) {
    // peer scoring: invalid messages count against the attacker (three put it near -90, decaying
    // over time, so only the sign is asserted)
    assert.ok(score(n) < 0, `attacker's score at ${n.peerId}: ${score(n)}`)
    assert.is(n.peerTable.get(stranger.peerId), undefined)
    assert.is.not(n.peerTable.get(victim.peerId)?.advert.body.freeSlots, 99)
    assert.is.not(n.peerTable.get(attacker.peerId)?.advert.body.freeSlots, 1000)
  }
})

test('an oversized advert is rejected by every node that receives it', async () => {
  const sender = nodes[3]!
  const before = sum(rejected('oversized'))
  await sender.libp2p.services.pubsub.publish(
    ADVERTS_TOPIC,
    new Uint8Array(MAX_ADVERT_BYTES + 100).fill(0xa0)
  )
  // a peer under the publish threshold (the attacker of the test before) gets nothing from us
  const receivers = nodes.filter((n) => n !== sender && scoreOf(sender, n) >= -50)
  assert.ok(receivers.length >= 3)
  await waitFor(() => sum(rejected('oversized')) >= before + receivers.length, 30_000, 'oversized rejections')
  await new Promise((r) => setTimeout(r, 300))
  // REJECT means no relay: each direct receiver saw it exactly once
  assert.is(sum(rejected('oversized')) - before, receivers.length)
})

test.run()
