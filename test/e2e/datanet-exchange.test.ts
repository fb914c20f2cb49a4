// Copying a published datanet version between real nodes over /openlora/datanet/1.0.0: the copy
// (over 256 chunks, so several chunk requests) has the same versions, roots and text; a fetch
// without a trusted root is refused unless asked for unverified; trusted roots that differ are
// refused before anything is stored; a peer sending wrong chunk bytes is caught and the next peer
// is used; and `openlora datanet fetch` drives it on a running node, its progress (chunk bytes
// copied of their total) streamed to the command.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { attributionExtension } from '../../src/attribution/extension.ts'
import { exportVersion } from '../../src/attribution/replicate.ts'
import { requireService } from '../../src/common/service.ts'
import { decodeCanonical, encodeCanonical } from '../../src/crypto/cbor.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { DATANET_PROTOCOL } from '../../src/protocols/datanet-exchange/constants.ts'
import { datanetExchangeExtension } from '../../src/protocols/datanet-exchange/extension.ts'
import { rawProtocolOverrides } from '../helpers/raw-peer.ts'
import { addrOf, type Fixtures, runCli, startNode } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'datanet-exchange-'))
const OWNER = '0x00000000000000000000000000000000000000aa'
const fx = { modelDir: '', cacheDir: join(root, 'cache'), adapterDirs: [] } as Fixtures
const extensions = [attributionExtension, datanetExchangeExtension]
const nodes: OpenLoraNode[] = []
let evilRequests = 0
/** what the adversary answers: flipped chunk bytes, 'busy', or bytes that are not CBOR */
let evilMode: 'bad-chunks' | 'busy' | 'garbage' = 'bad-chunks'

const start = async (name: string, extra: Parameters<typeof startNode>[3] = {}) => {
  const n = await startNode(root, name, fx, {
    serve: false,
    ...extra,
    overrides: { extensions, ...extra.overrides }
  })
  nodes.push(n)
  return n
}
const connect = async (n: OpenLoraNode, ...to: OpenLoraNode[]) => {
  for (const t of to) await n.libp2p.dial(multiaddr(addrOf(t)))
}
const svc = (n: OpenLoraNode) => requireService(n.services, 'attribution')
const exchange = (n: OpenLoraNode) => requireService(n.services, 'datanetExchange')

test.after(async () => {
  for (const n of nodes.reverse()) await n.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

let owner: OpenLoraNode
let id = ''
const roots: string[] = []
/** Bytes of the distinct chunks of versions 1..v (what a node holding none of them copies). */
const chunkBytes = async (v: number) => {
  const { count } = await svc(owner).store.getVersion(id, v)
  const refs = new Map<string, number>()
  for (const c of (await svc(owner).store.contributions(id)).slice(0, count))
    for (const r of c.chunks) refs.set(r.sha256, r.size)
  return [...refs.values()].reduce((a, b) => a + b, 0)
}

test.before(async () => {
  owner = await start('owner')
  const s = svc(owner).store
  const dn = await s.createDatanet({ name: 'recipes', owner: OWNER, tags: ['food'] })
  id = dn.id
  // ~1.3 MB of text: ~330 chunks of 4 KiB, more than one 256-chunk request
  await s.contribute(id, {
    text: Array.from({ length: 40_000 }, (_, i) => `Knead the dough for ${i} minutes.`).join(' '),
    contributor: OWNER
  })
  await s.contribute(id, {
    text: 'Salt the water well before the pasta goes in.',
    contributor: `0x${'0b'.repeat(20)}`
  })
  roots.push((await s.publish(id)).root)
  await s.contribute(id, { text: 'Rest the meat before slicing it.', contributor: OWNER, source: 'notes.md' })
  roots.push((await s.publish(id)).root)
})

test('a version and those before it are copied with the same roots, records and text', async () => {
  const copy = await start('copy')
  await connect(copy, owner)
  const chunks = (await svc(owner).store.contributions(id)).reduce((n, c) => n + c.chunks.length, 0)
  assert.ok(chunks > 256, `${chunks} chunks: more than one request`)
  const progress: { received: number; total: number; peer: string }[] = []
  const v = await exchange(copy).fetchVersion(id, 2, [owner.peerId], {
    trustedRoots: { 1: roots[0] as never, 2: roots[1] as never },
    onProgress: (p) => progress.push(p)
  })
  assert.equal([v.version, v.root, v.count], [2, roots[1], 3])
  // one event before the first chunk, then one per chunk stored, up to the bytes of all of them
  const bytes = await chunkBytes(2)
  assert.is(progress.length, chunks + 1)
  assert.equal(progress[0], { id, version: 2, peer: owner.peerId, received: 0, total: bytes })
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i]!.received > progress[i - 1]!.received)
  assert.is(progress.at(-1)!.received, bytes)
  const a = svc(owner).store
  const b = svc(copy).store
  assert.equal(await exportVersion(b, id, 2), await exportVersion(a, id, 2))
  assert.equal(
    (await b.versions(id)).map((x) => x.root),
    roots
  )
  for (const c of await b.contributions(id))
    for (const ref of c.chunks) assert.equal(await b.readChunk(ref), await a.readChunk(ref))
  // asking again is a no-op that still checks out
  assert.is((await exchange(copy).fetchVersion(id, 2, [owner.peerId], { unverified: true })).root, roots[1])
})

test('without a trusted root a fetch is refused unless asked for unverified', async () => {
  const plain = await start('plain')
  await connect(plain, owner)
  const err = await exchange(plain)
    .fetchVersion(id, 1, [owner.peerId])
    .catch((e: Error) => e)
  assert.is((err as { code?: string }).code, 'DATANET_UNTRUSTED')
  assert.is((await exchange(plain).fetchVersion(id, 1, [owner.peerId], { unverified: true })).root, roots[0])
})

test('a trusted root that differs is refused before anything is stored', async () => {
  const wary = await start('wary')
  await connect(wary, owner)
  const err = await exchange(wary)
    .fetchVersion(id, 2, [owner.peerId], {
      trustedRoots: { 1: roots[0] as never, 2: `0x${'00'.repeat(32)}` as never }
    })
    .catch((e: Error & { code?: string }) => e)
  assert.is((err as { code?: string }).code, 'DATANET_VERIFY_FAILED')
  assert.match((err as Error).message, /is not the trusted 0x0000/)
  await svc(wary)
    .store.getDatanet(id)
    .then(
      () => assert.unreachable('nothing stored'),
      () => {}
    )
})

test('a peer sending wrong chunk bytes is named, and the next peer serves', async () => {
  const bundle = await exportVersion(svc(owner).store, id, 2)
  // the adversary answers with the true bundle but flipped chunk bytes
  const evil = await start('evil', {
    overrides: rawProtocolOverrides(DATANET_PROTOCOL, async (stream: Stream) => {
      evilRequests++
      const lp = lpStream(stream, { maxDataLength: 1 << 20 })
      const req = decodeCanonical<{ t: string; refs?: { size: number }[] }>((await lp.read()).subarray())
      if (evilMode === 'busy')
        await lp.write(encodeCanonical({ t: 'error', code: 'DATANET_BUSY', message: 'busy' }))
      else if (evilMode === 'garbage') await lp.write(new Uint8Array([0xff, 0x00, 0x13]))
      else if (req.t === 'bundle') await lp.write(encodeCanonical({ t: 'bundle', bundle }))
      else
        for (const r of req.refs!)
          await lp.write(encodeCanonical({ t: 'chunk', bytes: new Uint8Array(r.size).fill(7) }))
      await stream.close()
    })
  })
  const fresh = await start('fresh')
  await connect(fresh, evil, owner)
  const trusted = { trustedRoots: { 1: roots[0] as never, 2: roots[1] as never } }
  const v = await exchange(fresh).fetchVersion(id, 2, [evil.peerId, owner.peerId], trusted)
  assert.is(v.root, roots[1])
  assert.ok(evilRequests >= 2, 'the adversary was asked for the bundle and the chunks')
  const alone = await start('alone')
  await connect(alone, evil)
  const err = await exchange(alone)
    .fetchVersion(id, 2, [evil.peerId], trusted)
    .catch((e: Error) => e)
  assert.match((err as Error).message, /do not hash to/)
  assert.is((err as { code?: string }).code, 'DATANET_VERIFY_FAILED')
  await svc(alone)
    .store.getDatanet(id)
    .then(
      () => assert.unreachable('nothing stored from the adversary'),
      () => {}
    )
  // a busy peer is reported as busy, a peer sending non-CBOR as failing a check
  evilMode = 'busy'
  const busy = await exchange(alone)
    .fetchVersion(id, 2, [evil.peerId], trusted)
    .catch((e: Error) => e)
  assert.is((busy as { code?: string }).code, 'DATANET_BUSY')
  evilMode = 'garbage'
  const garbage = await exchange(alone)
    .fetchVersion(id, 2, [evil.peerId], trusted)
    .catch((e: Error) => e)
  assert.is((garbage as { code?: string }).code, 'DATANET_VERIFY_FAILED')
  assert.match((garbage as Error).message, /not canonical CBOR/)
})

test('a root for the last version alone is not enough: every version stored needs one', async () => {
  const half = await start('half')
  await connect(half, owner)
  const err = await exchange(half)
    .fetchVersion(id, 2, [owner.peerId], { trustedRoots: { 2: roots[1] as never } })
    .catch((e: Error) => e)
  assert.is((err as { code?: string }).code, 'DATANET_UNTRUSTED')
  assert.match((err as Error).message, /no trusted root for version 1 of 1\.\.2/)
})

test('openlora datanet fetch runs it on the node of a data dir', async () => {
  const cliNode = await start('cli-node', { admin: true })
  const dataDir = join(root, 'cli-node')
  const ok = await runCli(
    'datanet',
    'fetch',
    `${id}@1`,
    '--from',
    addrOf(owner),
    '--root',
    `1=${roots[0]}`,
    '--data-dir',
    dataDir,
    '--json'
  )
  assert.is(ok.code, 0, ok.err)
  // --json: progress lines with growing byte counts, then the result, every line JSON
  const lines = ok.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  const bytes = await chunkBytes(1)
  assert.equal(lines.at(-1), {
    event: 'done',
    id,
    version: 1,
    root: roots[0],
    contributions: 2,
    trustedRoots: 1,
    rootsFrom: 'request',
    bytes
  })
  const progress = lines.slice(0, -1)
  assert.ok(progress.length >= 2, ok.out)
  assert.ok(progress.every((p) => p.event === 'progress' && p.peer === owner.peerId && p.total === bytes))
  assert.is(progress[0].received, 0)
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i].received > progress[i - 1].received)
  assert.is(progress.at(-1).received, bytes)
  assert.is((await svc(cliNode).store.getVersion(id, 1)).root, roots[0])
  const wrong = await runCli(
    'datanet',
    'fetch',
    `${id}@2`,
    '--from',
    addrOf(owner),
    '--root',
    `1=${roots[0]}`,
    '--root',
    `2=${roots[0]}`,
    '--data-dir',
    dataDir
  )
  assert.is(wrong.code, 1)
  assert.match(wrong.err, /is not the trusted/)
  const untrusted = await runCli(
    'datanet',
    'fetch',
    `${id}@2`,
    '--from',
    addrOf(owner),
    '--data-dir',
    dataDir
  )
  assert.is(untrusted.code, 1)
  assert.match(untrusted.err, /no trusted root for versions 1, 2 of 1\.\.2/)
  // a peer that does not answer is named in a refusal, and the node keeps running
  const unreachable = await runCli(
    'datanet',
    'fetch',
    `${id}@1`,
    '--from',
    // a peer no node here is connected to, at a port nothing listens on
    `/ip4/127.0.0.1/tcp/1/p2p/${peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()}`,
    '--root',
    `1=${roots[0]}`,
    '--data-dir',
    dataDir
  )
  assert.is(unreachable.code, 1, unreachable.out + unreachable.err)
  assert.match(unreachable.err, /cannot reach \/ip4\/127\.0\.0\.1\/tcp\/1/)
  const usage = await runCli('datanet', 'fetch', 'nope', '--data-dir', dataDir)
  assert.is(usage.code, 2)
  assert.match(usage.err, /ID@VERSION/)
})

test.run()
