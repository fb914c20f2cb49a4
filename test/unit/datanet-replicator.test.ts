// The background copier of datanet versions attribution needs: one copy per version at a time,
// no copy without trusted roots, and no retry storm after a failure.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Hex } from '../../src/crypto/hash.ts'
import { DatanetReplicator } from '../../src/protocols/datanet-exchange/replicator.ts'

const ID = `0x${'ab'.repeat(32)}` as Hex
const ROOT = `0x${'cd'.repeat(32)}` as Hex

function setup(opts: { roots?: boolean; fail?: boolean } = {}) {
  const calls: { id: string; version: number; peers: string[]; roots: unknown }[] = []
  const replicator = new DatanetReplicator({
    exchange: {
      fetchVersion: async (id, version, peers, o) => {
        calls.push({ id, version, peers, roots: o?.trustedRoots })
        await new Promise((r) => setTimeout(r, 10))
        if (o?.signal?.aborted) throw o.signal.reason
        if (opts.fail) throw new Error('no peer had it')
        return { datanetId: id as Hex, version, root: ROOT, count: 1, publishedAt: 0 }
      }
    },
    peers: () => ['peer-a', 'peer-b'],
    roots: async (_id, version) =>
      opts.roots === false
        ? undefined
        : Object.fromEntries(Array.from({ length: version }, (_, i) => [i + 1, ROOT]))
  })
  return { replicator, calls }
}

test('requests for a version being copied join it; the copy asks the peers with chain roots', async () => {
  const { replicator, calls } = setup()
  replicator.request(ID, 2)
  replicator.request(ID, 2)
  await replicator.settled()
  assert.is(calls.length, 1)
  assert.equal(calls[0], { id: ID, version: 2, peers: ['peer-a', 'peer-b'], roots: { 1: ROOT, 2: ROOT } })
  // a later request after success copies again (the caller asks only for what is missing)
  replicator.request(ID, 2)
  await replicator.settled()
  assert.is(calls.length, 2)
})

test('without trusted roots nothing is fetched, and a failed copy is not retried at once', async () => {
  const none = setup({ roots: false })
  none.replicator.request(ID, 1)
  await none.replicator.settled()
  assert.is(none.calls.length, 0)
  const failing = setup({ fail: true })
  failing.replicator.request(ID, 1)
  await failing.replicator.settled()
  failing.replicator.request(ID, 1)
  await failing.replicator.settled()
  assert.is(failing.calls.length, 1, 'the second request falls inside the retry delay')
})

test('stop cancels a running copy, waits for it, and refuses new ones', async () => {
  const { replicator, calls } = setup()
  replicator.request(ID, 1)
  await new Promise((r) => setTimeout(r, 3)) // the copy is inside fetchVersion now
  await replicator.stop()
  replicator.request(ID, 2)
  await replicator.settled()
  assert.equal(
    calls.map((c) => c.version),
    [1],
    'the running copy saw the stop; no copy started after it'
  )
})

test.run()
