// Fetch-if-missing for training (src/protocols/datanet-exchange/ensure.ts) over two real LevelDB
// stores, the copy being the exchange's own check-and-import (exportVersion → importVersion with
// the trusted roots) without the sockets: a held version is never fetched; a missing one needs
// trusted roots; concurrent asks share one copy; the peers at hand are asked before the slower
// lookup's, whose peers are asked only when those fail, and a failure of both names every peer.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DatanetStore } from '../../src/attribution/datanet-store.ts'
import { exportVersion, importVersion } from '../../src/attribution/replicate.ts'
import type { Hex } from '../../src/crypto/hash.ts'
import { datanetEnsurer, type EnsureDatanetDeps } from '../../src/protocols/datanet-exchange/ensure.ts'
import { DatanetFetchError } from '../../src/protocols/datanet-exchange/errors.ts'

const dir = mkdtempSync(join(tmpdir(), 'datanet-ensure-'))
const OWNER = '0x00000000000000000000000000000000000000aa'
const open = async (name: string) => {
  const db = new Level<string, unknown>(join(dir, name, 'db'))
  await db.open()
  return { db, store: new DatanetStore({ db, dataDir: join(dir, name) }) }
}
const src = await open('src')
const dst = await open('dst')
const d = await src.store.createDatanet({ name: 'tides', owner: OWNER })
await src.store.contribute(d.id, { text: 'High water came at six.', contributor: OWNER })
const v1 = await src.store.publish(d.id)
const id = d.id as Hex
const roots = { 1: v1.root as Hex }

test.after(async () => {
  await src.db.close()
  await dst.db.close()
  rmSync(dir, { recursive: true, force: true })
})

/** Peers named 'good…' hold the version (a real check-and-import); others do not. */
function deps(over: Partial<EnsureDatanetDeps> = {}) {
  const asked: string[][] = []
  const dep: EnsureDatanetDeps = {
    store: () => dst.store,
    fetch: async (i, v, from, o) => {
      asked.push(from)
      await new Promise((r) => setTimeout(r, 10))
      const good = from.find((p) => p.startsWith('good'))
      if (!good)
        throw new DatanetFetchError('DATANET_NOT_FOUND', `could not fetch from ${from.length} peer(s)`, {
          attempts: from.map((peer) => ({ peer, error: 'unknown datanet', code: 'DATANET_NOT_FOUND' }))
        })
      return importVersion(
        dst.store,
        await exportVersion(src.store, i, v),
        (ref) => src.store.readChunk(ref),
        o.trustedRoots
      )
    },
    candidates: async () => ['near-1'],
    roots: async () => roots,
    untrustedHint: 'give roots',
    ...over
  }
  return { dep, asked }
}

test('no trusted roots: refused before any peer is asked, saying what to do', async () => {
  const { dep, asked } = deps({ roots: async () => undefined })
  try {
    await datanetEnsurer(dep)(id, 1)
    assert.unreachable('untrusted')
  } catch (err) {
    assert.is((err as DatanetFetchError).code, 'DATANET_UNTRUSTED')
    assert.match((err as Error).message, `datanet ${id} has no version 1 here`)
    assert.match((err as Error).message, /give roots/)
  }
  assert.equal(asked, [])
})

test('the peers at hand, then the lookup’s: both failing names every peer asked', async () => {
  const { dep, asked } = deps({ moreCandidates: async () => ['near-1', 'far-2'] })
  try {
    await datanetEnsurer(dep)(id, 1, { prefer: ['asker'] })
    assert.unreachable('nobody has it')
  } catch (err) {
    assert.is((err as DatanetFetchError).code, 'DATANET_NOT_FOUND')
    assert.match(
      (err as Error).message,
      'from 3 peer(s): asker: unknown datanet; near-1: unknown datanet; far-2:'
    )
  }
  assert.equal(asked, [['asker', 'near-1'], ['far-2']], 'the lookup adds only peers not asked yet')
  // named peers: only those, no lookup
  const named = deps({ moreCandidates: async () => assert.unreachable('no lookup') as never })
  await datanetEnsurer(named.dep)(id, 1, { from: ['nobody'] }).catch(() => {})
  assert.equal(named.asked, [['nobody']])
})

test('a missing version is copied once for concurrent asks, then held', async () => {
  const { dep, asked } = deps({ moreCandidates: async () => ['good-far'] })
  const ensure = datanetEnsurer(dep)
  const [a, b] = await Promise.all([ensure(id, 1), ensure(id, 1)])
  assert.equal(a, b)
  assert.equal([a.fetched, a.rootsFrom, a.version], [true, 'chain', 1])
  assert.equal(asked, [['near-1'], ['good-far']], 'one copy: the near peer failed, the far one had it')
  assert.is((await dst.store.getVersion(id, 1)).root, v1.root)
  const again = await ensure(id, undefined)
  assert.equal([again.fetched, again.rootsFrom, again.version], [false, 'held', 1])
  assert.is(asked.length, 2, 'held: nobody asked')
})

test.run()
