import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Attributor } from '../../src/attribution/attribute.ts'
import { DatanetStore } from '../../src/attribution/datanet-store.ts'
import { SpanIndexCache } from '../../src/attribution/index-file.ts'
import { exportVersion, importVersion, type VersionBundle } from '../../src/attribution/replicate.ts'
import type { ChunkRef } from '../../src/attribution/types.ts'
import type { Hex } from '../../src/crypto/hash.ts'
import { ADDR, rng, words, wordTokenizer } from './attribution-fixtures.ts'

const tok = wordTokenizer()
let dir: string
let dbs: Level<string, unknown>[]
let a: DatanetStore
let b: DatanetStore
let id: Hex
let bundle: VersionBundle

test.before.each(async () => {
  dir = mkdtempSync(join(tmpdir(), 'replicate-'))
  dbs = [new Level(join(dir, 'a-db')), new Level(join(dir, 'b-db'))]
  a = new DatanetStore({ db: dbs[0]!, dataDir: join(dir, 'a') })
  b = new DatanetStore({ db: dbs[1]!, dataDir: join(dir, 'b') })
  const r = rng(8)
  id = (await a.createDatanet({ name: 'shared', owner: ADDR.alice, tags: ['x'] })).id
  await a.contribute(id, { text: words(r, 2000).join(' '), contributor: ADDR.alice })
  await a.publish(id)
  await a.contribute(id, { text: words(r, 300).join(' '), contributor: ADDR.bob })
  await a.contribute(id, { text: words(r, 300).join(' '), contributor: ADDR.carol })
  await a.publish(id)
  bundle = await exportVersion(a, id, 2)
})
test.after.each(async () => {
  for (const db of dbs) await db.close()
  rmSync(dir, { recursive: true, force: true })
})

const fromA = (ref: ChunkRef) => a.readChunk(ref)
const rejects = async (p: Promise<unknown>, re: RegExp) => {
  try {
    await p
    assert.unreachable('accepted')
  } catch (err) {
    assert.match((err as Error).message, re)
  }
}

test('a peer rebuilds both versions from the bundle and chunks, with the same roots and attributions', async () => {
  const v2 = await importVersion(b, bundle, fromA, { 2: (await a.getVersion(id, 2)).root })
  assert.is(v2.root, (await a.getVersion(id, 2)).root)
  assert.is((await b.getVersion(id, 1)).root, (await a.getVersion(id, 1)).root)
  assert.equal(await b.getDatanet(id), { ...(await a.getDatanet(id)) })
  const out = tok.encode(await a.readChunkText((await a.contributions(id))[2]!.chunks[0]!)).slice(5, 40)
  const prov = { datanets: [{ id, version: 2, bp: 10_000 }] }
  const ra = await new Attributor({
    store: a,
    indexes: new SpanIndexCache({ store: a, tokenizer: tok })
  }).attribute(out, prov)
  const rb = await new Attributor({
    store: b,
    indexes: new SpanIndexCache({ store: b, tokenizer: tok })
  }).attribute(out, prov)
  assert.is(rb.summary.proofHash, ra.summary.proofHash)
  assert.equal(rb.summary.contributors, [{ address: ADDR.carol, bp: 10_000 }])
  // Importing again (or a later version) appends nothing twice.
  await importVersion(b, bundle, fromA)
  assert.is((await b.contributions(id)).length, 3)
})

test('bundles that do not add up are refused before anything is stored', async () => {
  const swapped = structuredClone(bundle)
  swapped.contributions[1]!.contributor = ADDR.carol
  await rejects(importVersion(b, swapped, fromA), /version 2: contributions give root/)
  const renamed = structuredClone(bundle)
  renamed.datanet.name = 'other'
  await rejects(importVersion(b, renamed, fromA), /not the hash of its creation record/)
  const cid = structuredClone(bundle)
  cid.contributions[0]!.chunks[0]!.size += 1
  await rejects(importVersion(b, cid, fromA), /does not give CID/)
  await rejects(importVersion(b, bundle, fromA, { 1: `0x${'00'.repeat(32)}` }), /not the trusted/)
  await rejects(
    importVersion(b, bundle, async (ref) => {
      const bytes = await a.readChunk(ref)
      bytes[0] = bytes[0]! ^ 1
      return bytes
    }),
    /do not hash/
  )
  assert.is((await b.listDatanets()).length, 0)
})

/** A bundle as a peer may send it: any field may hold anything. */
type LooseBundle = {
  datanet: Record<string, unknown>
  versions: Record<string, unknown>[]
  contributions: Record<string, unknown>[]
}

test('a bundle with mistyped or oversized fields is refused before anything is stored', async () => {
  // Each field is one a peer controls and the store would keep as it came.
  const cases: [string, (x: LooseBundle) => void, RegExp][] = [
    [
      'description',
      (x) => (x.datanet.description = 'd'.repeat(5000)),
      /bundle\.datanet\.description: must be a string of at most 4096 characters/
    ],
    ['tags', (x) => (x.datanet.tags = [{ evil: true }]), /bundle\.datanet\.tags\[0\]: must be a string/],
    [
      'tag count',
      (x) => (x.datanet.tags = Array.from({ length: 33 }, (_, i) => `t${i}`)),
      /bundle\.datanet\.tags: must be an array of at most 32 items/
    ],
    [
      'createdAt',
      (x) => (x.datanet.createdAt = '1'),
      /bundle\.datanet\.createdAt: must be an integer in 0\.\./
    ],
    [
      'version count',
      (x) => (x.versions[0]!.count = '1'),
      /bundle\.versions\[0\]\.count: must be an integer/
    ],
    [
      'publishedAt',
      (x) => (x.versions[1]!.publishedAt = -1),
      /bundle\.versions\[1\]\.publishedAt: must be an integer in 0\.\..* \(got -1\)/
    ],
    [
      'source',
      (x) => (x.contributions[0]!.source = 's'.repeat(2000)),
      /bundle\.contributions\[0\]\.source: must be a string of at most 1024 characters/
    ],
    [
      'source type',
      (x) => (x.contributions[2]!.source = { a: 1 }),
      /bundle\.contributions\[2\]\.source: must be a string/
    ]
  ]
  for (const [what, patch, re] of cases) {
    const bad = structuredClone(bundle) as unknown as LooseBundle
    patch(bad)
    await rejects(importVersion(b, bad as unknown as VersionBundle, fromA), re).catch((err) => {
      throw new Error(`${what}: ${(err as Error).message}`)
    })
  }
  assert.is((await b.listDatanets()).length, 0)
})

test('a local history that differs from the bundle is a fork and is refused', async () => {
  const dn = await a.getDatanet(id)
  await b.appendReplicated(dn, [], [])
  await b.contribute(id, { text: 'something else entirely', contributor: ADDR.bob })
  await rejects(importVersion(b, bundle, fromA), /versions would fork/)
  const err = await importVersion(b, bundle, fromA).catch((e: Error & { code?: string }) => e)
  assert.is((err as { code?: string }).code, 'DATANET_FORK', 'a local fork is not the bundle being invalid')
})

test('under the write lock, stored versions must carry the bundle’s roots', async () => {
  await importVersion(b, bundle, fromA)
  const dn = await a.getDatanet(id)
  const records = await a.contributions(id)
  // the same contributions with another version 1: its root differs from the stored one
  const moved = (await a.versions(id)).map((v, i) =>
    i === 0 ? { ...v, root: `0x${'11'.repeat(32)}` as Hex } : v
  )
  await rejects(b.appendReplicated(dn, records, moved), /local version 1 has root .*versions would fork/)
})

test.run()
