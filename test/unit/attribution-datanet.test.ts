import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { documentsFromFile } from '../../src/attribution/chunking.ts'
import { DatanetStore, datanetIdOf } from '../../src/attribution/datanet-store.ts'
import { buildMerkleTree, processMerkleProof } from '../../src/attribution/merkle.ts'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import { sha256Hex } from '../../src/crypto/hash.ts'
import { ADDR, rng, words } from './attribution-fixtures.ts'

let dir: string
let db: Level<string, unknown>
let store: DatanetStore

test.before.each(async () => {
  dir = mkdtempSync(join(tmpdir(), 'datanet-'))
  db = new Level(join(dir, 'db'))
  await db.open()
  store = new DatanetStore({ db, dataDir: dir })
})
test.after.each(async () => {
  await db.close()
  rmSync(dir, { recursive: true, force: true })
})

const codeOf = async (p: Promise<unknown>): Promise<string | undefined> => {
  try {
    await p
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

test('datanet id is sha256 of the canonical { name, owner, createdAt } and the record persists', async () => {
  const dn = await store.createDatanet({
    name: 'medical-qa',
    owner: ADDR.alice.toUpperCase().replace('0X', '0x'),
    description: 'questions',
    tags: ['med', 'qa', 'med'],
    createdAt: 1_700_000_000_000
  })
  assert.is(
    dn.id,
    sha256Hex(encodeCanonical({ name: 'medical-qa', owner: ADDR.alice, createdAt: 1_700_000_000_000 }))
  )
  assert.is(dn.id, datanetIdOf('medical-qa', ADDR.alice, 1_700_000_000_000))
  assert.equal(dn.tags, ['med', 'qa'])
  assert.equal(await store.getDatanet(dn.id), dn)
  assert.is((await store.listDatanets()).length, 1)
  assert.is(
    await codeOf(
      store.createDatanet({ name: 'medical-qa', owner: ADDR.alice, createdAt: 1_700_000_000_000 })
    ),
    'DATANET_INVALID'
  )
  assert.is(await codeOf(store.createDatanet({ name: '', owner: ADDR.alice })), 'DATANET_INVALID')
  assert.is(await codeOf(store.createDatanet({ name: 'x', owner: 'bob' })), 'DATANET_INVALID')
  assert.is(await codeOf(store.getDatanet(`0x${'1'.repeat(64)}`)), 'DATANET_NOT_FOUND')
})

test('contributions are chunked by content, versions are append-only with Merkle roots', async () => {
  const dn = await store.createDatanet({ name: 'd', owner: ADDR.alice })
  const r = rng(1)
  const long = words(r, 3000).join(' ') // ~17 KB: several chunks
  const a = await store.contribute(dn.id, { text: long, contributor: ADDR.alice })
  assert.ok(a.chunks.length >= 4, `chunks ${a.chunks.length}`)
  const same = await store.contribute(dn.id, { text: long, contributor: ADDR.bob })
  assert.is(same.cid, a.cid, 'the same text has the same CID')
  assert.is.not(same.leaf, a.leaf, 'but another contributor makes another leaf')
  assert.is(
    await codeOf(store.contribute(dn.id, { text: long, contributor: ADDR.alice })),
    'CONTRIBUTION_DUPLICATE'
  )
  // Chunks are stored once by hash.
  const chunkFiles = readdirSync(join(dir, 'chunks')).flatMap((d) => readdirSync(join(dir, 'chunks', d)))
  assert.is(chunkFiles.length, a.chunks.length)

  const v1 = await store.publish(dn.id)
  assert.is(v1.version, 1)
  assert.is(v1.count, 2)
  assert.is(v1.root, buildMerkleTree([a.leaf, same.leaf]).root)
  assert.is(await codeOf(store.publish(dn.id)), 'NOTHING_TO_PUBLISH')

  const c = await store.contribute(dn.id, { text: 'a short note', contributor: ADDR.carol })
  const v2 = await store.publish(dn.id)
  assert.is(v2.version, 2)
  assert.is.not(v2.root, v1.root)
  // Version 1 is unchanged by later contributions.
  const back1 = await store.versionContents(dn.id, 1)
  assert.is(back1.version.root, v1.root)
  assert.equal(
    back1.contributions.map((x) => x.cid),
    [a.cid, same.cid]
  )
  const back2 = await store.versionContents(dn.id, 2)
  assert.is(back2.contributions.length, 3)
  assert.is(processMerkleProof(c.leaf, back2.tree.proof(c.leaf)), v2.root)
  assert.equal(
    (await store.versions(dn.id)).map((v) => v.version),
    [1, 2]
  )
  assert.is((await store.getDatanet(dn.id)).latestVersion, 2)
  assert.is(await codeOf(store.getVersion(dn.id, 3)), 'VERSION_NOT_FOUND')
  // The chunks read back as the original text.
  let text = ''
  for (const ref of a.chunks) text += await store.readChunkText(ref)
  assert.is(text, long)
})

test('files: .txt, .md and .jsonl rows become contributions; other types are refused', async () => {
  const dn = await store.createDatanet({ name: 'files', owner: ADDR.alice })
  writeFileSync(join(dir, 'a.txt'), 'plain text file')
  writeFileSync(join(dir, 'b.md'), '# Title\n\nmarkdown body')
  writeFileSync(join(dir, 'c.jsonl'), '{"text":"row one"}\n{"text":"row two"}\n')
  writeFileSync(join(dir, 'd.csv'), 'a,b')
  assert.is((await store.contributeFile(dn.id, join(dir, 'a.txt'), ADDR.bob)).length, 1)
  assert.is((await store.contributeFile(dn.id, join(dir, 'b.md'), ADDR.bob)).length, 1)
  const rows = await store.contributeFile(dn.id, join(dir, 'c.jsonl'), ADDR.carol)
  assert.equal(
    rows.map((r) => r.source),
    ['c.jsonl#1', 'c.jsonl#2']
  )
  assert.is(await codeOf(store.contributeFile(dn.id, join(dir, 'd.csv'), ADDR.bob)), 'CONTRIBUTION_INVALID')
  assert.is((await store.getDatanet(dn.id)).contributions, 4)
})

test('a chunk corrupted on disk is refused when read; a peer chunk must match its hash and repairs it', async () => {
  const dn = await store.createDatanet({ name: 'c', owner: ADDR.alice })
  const a = await store.contribute(dn.id, { text: 'some text to keep', contributor: ADDR.alice })
  const ref = a.chunks[0]!
  const h = ref.sha256.slice(2)
  writeFileSync(join(dir, 'chunks', h.slice(0, 2), h), 'some text to kEEp')
  assert.is(await codeOf(store.readChunk(ref)), 'CHUNK_MISMATCH')
  assert.is(await codeOf(store.putChunk(new Uint8Array(Buffer.from('nope')), ref)), 'CHUNK_MISMATCH')
  await store.putChunk(new Uint8Array(Buffer.from('some text to keep')), { ...ref })
  assert.is(
    Buffer.from(await store.readChunk(ref)).toString(),
    'some text to keep',
    'a good copy repairs the bad one'
  )
})

test('state survives reopening the database', async () => {
  const dn = await store.createDatanet({ name: 'p', owner: ADDR.alice })
  await store.contribute(dn.id, { text: 'persisted words here', contributor: ADDR.bob })
  const v = await store.publish(dn.id)
  await db.close()
  db = new Level(join(dir, 'db'))
  await db.open()
  store = new DatanetStore({ db, dataDir: dir })
  assert.is((await store.getVersion(dn.id, 1)).root, v.root)
  assert.is((await store.contributions(dn.id)).length, 1)
})

test('.jsonl rows: text, content, prompt+answer or messages; anything else names the line', () => {
  const enc = (rows: unknown[]) => new TextEncoder().encode(rows.map((r) => JSON.stringify(r)).join('\n'))
  const docs = documentsFromFile(
    'd.jsonl',
    enc([
      'plain',
      { text: 't', content: 'ignored' },
      { text: 5, content: 'c' },
      { prompt: 'q', completion: 7, response: 'a' },
      { messages: [{ role: 'user', content: 'm1' }, { content: 'm2' }] }
    ])
  )
  assert.equal(
    docs.map((d) => d.text),
    ['plain', 't', 'c', 'q\na', 'm1\nm2']
  )
  assert.throws(
    () => documentsFromFile('d.jsonl', enc(['ok', { title: 'no text' }])),
    (e: Error) =>
      /d\.jsonl line 2: a row must be a string, or an object with a string "text", "content", "prompt" or "messages\[\]\.content"/.test(
        e.message
      )
  )
})

test.run()
