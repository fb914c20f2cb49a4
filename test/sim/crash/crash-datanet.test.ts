// kill -9 of a real process copying a datanet version from a real peer (chunks stored one by one
// as temp file + rename, then contributions and versions in one LevelDB batch): after each kill
// the copy's store shows either nothing of the version or all of it (never some contributions or
// a version without its records), every file named by a chunk hash holds exactly those bytes, and
// a restarted copy fetches only what is missing and completes with the source's root and text.
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { Level } from 'level'
import { createLibp2p, type Libp2p } from 'libp2p'
import { test } from 'uvu'
import { DatanetStore } from '../../../src/attribution/datanet-store.ts'
import { sha256, toHex } from '../../../src/crypto/hash.ts'
import { DatanetExchange } from '../../../src/protocols/datanet-exchange/exchange.ts'
import { startWorker } from '../../helpers/crash.ts'

const OWNER = '0x00000000000000000000000000000000000000aa'
let dir: string
let host: Libp2p
let srcDb: Level<string, unknown>
let src: DatanetStore
let id = ''
let root = ''
let chunks = 0

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'crash-datanet-'))
  srcDb = new Level(join(dir, 'source', 'db'), { valueEncoding: 'json' })
  await srcDb.open()
  src = new DatanetStore({ db: srcDb as never, dataDir: join(dir, 'source') })
  const dn = await src.createDatanet({ name: 'crash', owner: OWNER })
  id = dn.id
  // ~6 MB of text in 3 contributions: ~1,500 chunks of 4 KiB, six chunk requests
  for (let c = 0; c < 3; c++)
    await src.contribute(id, {
      text: Array.from({ length: 60_000 }, (_, i) => `Line ${c}.${i}: stir for ${i % 97} minutes.`).join(' '),
      contributor: `0x${String(c + 1).repeat(40)}`
    })
  root = (await src.publish(id)).root
  chunks = (await src.contributions(id)).reduce((n, c) => n + c.chunks.length, 0)
  host = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
  await new DatanetExchange({ host, store: () => src }).start()
})
test.after(async () => {
  await host?.stop()
  await srcDb?.close()
  rmSync(dir, { recursive: true, force: true })
})

/** Opens the copy's store and checks what a reader of it would see. */
async function inspect(copy: string, acked: number, done: boolean): Promise<'absent' | 'complete'> {
  const db = new Level<string, unknown>(join(copy, 'db'), { valueEncoding: 'json' })
  await db.open()
  try {
    const store = new DatanetStore({ db: db as never, dataDir: copy })
    // every file named by a hash holds those bytes; at most one temp file per kill lies beside them
    let named = 0
    for (const sub of safeList(join(copy, 'chunks')))
      for (const f of readdirSync(join(copy, 'chunks', sub))) {
        if (f.endsWith('.tmp')) continue
        named++
        assert.equal(toHex(sha256(readFileSync(join(copy, 'chunks', sub, f)))), `0x${f}`, `chunk file ${f}`)
      }
    assert.ok(named >= acked, `${acked} acknowledged chunks stored (found ${named})`)
    let state: 'absent' | 'complete'
    try {
      await store.getVersion(id, 1)
      state = 'complete'
    } catch (err) {
      assert.equal((err as { code?: string }).code, 'VERSION_NOT_FOUND')
      state = 'absent'
    }
    if (state === 'complete') {
      const { version, contributions } = await store.versionContents(id, 1)
      assert.equal(version.root, root)
      for (const c of contributions) for (const ref of c.chunks) await store.readChunk(ref)
    } else {
      assert.ok(!done, 'an acknowledged copy is in the store')
      assert.deepEqual(
        await store.contributions(id).catch(() => []),
        [],
        'no contribution without its version'
      )
    }
    return state
  } finally {
    await db.close()
  }
}

function safeList(d: string): string[] {
  try {
    return readdirSync(d)
  } catch {
    return []
  }
}

test('kill -9 mid datanet copy: all or nothing visible, chunk files intact, the copy completes', async () => {
  const copy = join(dir, 'copy')
  const env = {
    CRASH_SOURCE: host.getMultiaddrs()[0]!.toString(),
    CRASH_DATANET: id,
    CRASH_VERSION: '1',
    CRASH_ROOT: root
  }
  assert.ok(chunks > 1_000, `${chunks} chunks`)
  let acked = 0
  const states: string[] = []
  // kills after n more chunks, the last one as the final chunk lands (racing the version's batch)
  for (const more of [40, 400, 500, chunks]) {
    const w = startWorker(['datanet', copy], env)
    await w.until((a) => a.some((x) => x[0] === 'done') || a.length >= Math.min(more, chunks - acked))
    await w.kill9()
    const done = w.acks.some((x) => x[0] === 'done')
    acked += w.acks.filter((x) => x[0] === 'chunk').length
    const state = await inspect(copy, acked, done)
    states.push(`${state}@${acked}`)
    if (state === 'complete') break
  }
  assert.ok(
    states.some((s) => s.startsWith('absent@') && !s.endsWith('@0')),
    `a kill landed mid-copy, after some chunks: ${states.join(', ')}`
  )
  // restarted without a kill: fetches what is missing and completes
  const w = startWorker(['datanet', copy], env)
  await w.exited
  const done = w.acks.find((x) => x[0] === 'done')
  assert.ok(done, `the copy completes: ${w.stderr()}`)
  assert.equal(done[1], root)
  assert.ok(
    w.acks.filter((x) => x[0] === 'chunk').length <= chunks - acked,
    'a restart fetches only the chunks not yet stored'
  )
  assert.equal(await inspect(copy, acked, true), 'complete')
})

test.run()
