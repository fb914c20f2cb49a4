// Blocking peers by hand (admin POST /peers/block, /peers/unblock): what the soak's network
// partition is made of. Three real nodes; the first blocks the third: their connection goes, the
// third cannot dial back in while the others stay connected; unblocking lets them meet again.
// A bad body is refused with the key and what is allowed. Also the soak's other admin route,
// POST /process/collect: the heap figure after a full collection.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { AdminRefusedError, adminRequest } from '../../src/node/admin.ts'
import { type Swarm, startSwarm, waitFor } from './node-fixture.ts'

let swarm: Swarm

test.before(async () => {
  swarm = await startSwarm(3)
})
test.after(() => swarm?.stop())

const connected = (a: number, b: number) =>
  swarm.nodes[a]!.libp2p.getConnections(swarm.nodes[b]!.libp2p.peerId).length > 0

test('a blocked peer is hung up on and cannot come back until unblocked', async () => {
  const [a, , c] = swarm.nodes as [(typeof swarm.nodes)[0], unknown, (typeof swarm.nodes)[0]]
  await c.libp2p.dial(a.libp2p.getMultiaddrs()[0]!)
  await waitFor(() => connected(0, 2) && connected(0, 1), 10_000, 'node 0 connected to both')
  const r = await adminRequest<{ blocked: { peer: string; untilMs: number }[] }>(
    swarm.dirs[0]!,
    '/peers/block',
    5_000,
    {
      peers: [c.peerId.toString(), a.peerId.toString()],
      ms: 60_000
    }
  )
  assert.equal(
    r.blocked.map((b) => b.peer),
    [c.peerId.toString()],
    'a node never blocks itself'
  )
  await waitFor(() => !connected(0, 2) && !connected(2, 0), 10_000, 'the blocked peer hung up on')
  const back = await c.libp2p.dial(a.libp2p.getMultiaddrs()[0]!).then(
    () => 'dialled',
    () => 'refused'
  )
  // the gater refuses it right after the handshake; either the dial fails or the connection dies at once
  if (back === 'dialled') await waitFor(() => !connected(0, 2), 5_000, 'the blocked peer dropped again')
  assert.ok(connected(0, 1), 'the other peer stays connected')
  const u = await adminRequest<{ unblocked: string[] }>(swarm.dirs[0]!, '/peers/unblock', 5_000, {
    peers: [c.peerId.toString()]
  })
  assert.equal(u.unblocked, [c.peerId.toString()])
  await c.libp2p.dial(a.libp2p.getMultiaddrs()[0]!)
  await waitFor(() => connected(0, 2), 10_000, 'connected again after unblock')
})

test('a bad block body is refused naming the key and what is allowed', async () => {
  const bad = await adminRequest(swarm.dirs[0]!, '/peers/block', 5_000, {
    peers: ['not a peer id'],
    ms: 1_000
  }).catch((e: Error) => e)
  assert.instance(bad, AdminRefusedError)
  assert.match((bad as Error).message, /body\.peers\[0\].*must be a peer id/)
  const long = await adminRequest(swarm.dirs[0]!, '/peers/block', 5_000, {
    peers: [swarm.nodes[1]!.peerId.toString()],
    ms: 10 * 86_400_000
  }).catch((e: Error) => e)
  assert.instance(long, AdminRefusedError)
  assert.match((long as Error).message, /body\.ms/)
  assert.ok(connected(0, 1), 'nothing was blocked')
})

test('POST /process/collect answers the heap after a full collection (garbage is not counted)', async () => {
  type Answer = { pid: number; heapUsedBytes: number; rssBytes: number }
  let garbage: unknown[] | undefined = Array.from({ length: 400_000 }, (_, i) => ({ i, s: `x${i}` }))
  const held = await adminRequest<Answer>(swarm.dirs[0]!, '/process', 5_000)
  garbage = undefined // about 40 MB that only a collection frees
  const live = await adminRequest<Answer>(swarm.dirs[0]!, '/process/collect', 5_000, {})
  assert.equal(live.pid, process.pid)
  assert.ok(garbage === undefined)
  assert.ok(
    live.heapUsedBytes < held.heapUsedBytes - 20 * 2 ** 20,
    `heap ${(held.heapUsedBytes / 2 ** 20).toFixed(0)} MiB with the garbage, ${(live.heapUsedBytes / 2 ** 20).toFixed(0)} MiB after the collection`
  )
  const bad = await adminRequest(swarm.dirs[0]!, '/process/collect', 5_000, { now: true }).catch(
    (e: Error) => e
  )
  assert.instance(bad, AdminRefusedError)
})

test.run()
