// The background copier of datanet versions attribution needs: one copy per version at a time,
// no copy without trusted roots, and no retry storm after a failure.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Hex } from '../../src/crypto/hash.ts'
import { DatanetReplicator } from '../../src/protocols/datanet-exchange/replicator.ts'

const ID = `0x${'ab'.repeat(32)}` as Hex
const ROOT = `0x${'cd'.repeat(32)}` as Hex

// A copy nobody cancels runs this long in the `hang` fake: far longer than a cancelled one.
const HANG_MS = 3_000

function setup(opts: { roots?: boolean; fail?: boolean; hang?: boolean } = {}) {
  const calls: { id: string; version: number; peers: string[]; roots: unknown }[] = []
  /** how each copy of the `hang` fake ended: cancelled by its signal, or finished on its own */
  const ended: ('cancelled' | 'finished')[] = []
  const replicator = new DatanetReplicator({
    exchange: {
      fetchVersion: async (id, version, peers, o) => {
        calls.push({ id, version, peers, roots: o?.trustedRoots })
        if (opts.hang) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, HANG_MS)
            o?.signal?.addEventListener(
              'abort',
              () => {
                // a cancelled copy still takes a moment to end (closing its stream)
                clearTimeout(timer)
                setTimeout(resolve, 20)
              },
              { once: true }
            )
          })
          ended.push(o?.signal?.aborted ? 'cancelled' : 'finished')
        } else await new Promise((r) => setTimeout(r, 10))
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
  return { replicator, calls, ended }
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
  const { replicator, calls, ended } = setup({ hang: true })
  replicator.request(ID, 1)
  // the copy is inside fetchVersion (it reads the roots first)
  for (let i = 0; i < 200 && calls.length === 0; i++) await new Promise((r) => setTimeout(r, 5))
  assert.is(calls.length, 1, 'the copy started')
  assert.equal(ended, [], 'the copy is still running when stop is called')
  await replicator.stop()
  // a stop that did not cancel would leave the copy running (ended empty) or, had it waited,
  // see it finish on its own after HANG_MS ('finished')
  assert.equal(ended, ['cancelled'], 'stop cancelled the running copy and waited for it to end')
  replicator.request(ID, 2)
  await replicator.settled()
  assert.equal(
    calls.map((c) => c.version),
    [1],
    'no copy started after stop'
  )
})

test.run()
