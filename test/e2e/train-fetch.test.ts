// Training on a datanet the trainer does not hold (issue 21: "fetched from peers if missing"): the
// trainer copies the version over the datanet exchange, checked against the roots its chain
// holds, then trains — for a /openlora/train job (asked of the requester first, then its peers), a
// gateway (ModelFactory) job naming no version (the chain's latest), and `openlora train --datanet`
// both with the data dir's node running (the node fetches and hands over the rows) and without it
// (a short-lived host copies into the data dir). Refusals name what was asked and why: no peer has
// it (each peer tried), no trusted roots, no peer reachable. Real anvil with the compiled
// contracts, real libp2p hosts on 127.0.0.1, real LevelDB, real ONNX Runtime training.
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { requireService } from '../../src/common/service.ts'
import { type Hex, sha256Hex } from '../../src/crypto/hash.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { requestTraining } from '../../src/protocols/training/train-protocol.ts'
import { modelIdOf } from '../../src/runtime/model/config.ts'
import { readModelConfig } from '../../src/runtime/model/index.ts'
import { addrOf, type Fixtures, makeFixtures, runCli, startNode } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'openlora-train-fetch-'))
let fx: Fixtures
let owner: OpenLoraNode // holds the datanets, runs anvil (chain preset local)
let trainer: OpenLoraNode // offers training, reads roots from the owner's chain, holds no datanet
let modelId: string
let chainFile: string
const dn: Record<'a' | 'b' | 'c' | 'd', { id: Hex; root: Hex }> = {} as never
const absent = { id: sha256Hex('a datanet nobody holds') as Hex, root: sha256Hex('its root') as Hex }

test.before(async () => {
  fx = await makeFixtures(root, 0)
  modelId = modelIdOf(await readModelConfig(fx.modelDir), fx.modelDir)
  owner = await startNode(root, 'owner', fx, {
    serve: false,
    config: { chain: { preset: 'local', claimIntervalSec: 3600 } }
  })
  chainFile = join(root, 'owner', 'chain.json')
  const ep = JSON.parse(readFileSync(chainFile, 'utf8'))
  const chainCfg = { chain: { rpcUrl: ep.rpcUrl, chainId: ep.chainId, addresses: ep.addresses } }
  trainer = await startNode(root, 'trainer', fx, {
    admin: true,
    config: { ...chainCfg, training: { offer: true } }
  })
  const store = requireService(owner.services, 'attribution').store
  const chain = requireService(owner.services, 'chain').client
  const texts = {
    a: ['a stitch in time saves nine', 'knowledge is power'],
    b: ['fortune favours the bold'],
    c: ['the early bird catches the worm', 'better late than never'],
    d: ['still waters run deep']
  }
  for (const [k, rows] of Object.entries(texts) as [keyof typeof dn, string[]][]) {
    const d = await store.createDatanet({ name: `sayings-${k}`, owner: chain.account!.address })
    for (const text of rows) await store.contribute(d.id, { text, contributor: d.owner })
    const v = await store.publish(d.id)
    await chain.createDatanet(d.id as Hex, sha256Hex(k) as Hex)
    await chain.appendDatanetVersion(d.id as Hex, v.root as Hex)
    dn[k] = { id: d.id as Hex, root: v.root as Hex }
  }
  // on-chain but held by no node: every copy of it fails
  await chain.createDatanet(absent.id, sha256Hex('absent') as Hex)
  await chain.appendDatanetVersion(absent.id, absent.root)
  await trainer.libp2p.dial(multiaddr(addrOf(owner)))
})
test.after(async () => {
  await trainer?.stop().catch(() => {})
  await owner?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

const JOB = (datanet: { id: string; version?: number }) => ({
  model: modelId,
  datanet,
  steps: 2,
  lr: 0.01,
  optimizer: 'adamw' as const,
  seed: 3
})
const held = (node: OpenLoraNode, id: string) =>
  requireService(node.services, 'attribution')
    .store.getVersion(id, 1)
    .then(
      (v) => v.root,
      () => undefined
    )

test('a peer’s job on a datanet the trainer lacks: copied with the chain’s roots, then trained', async () => {
  assert.is(await held(trainer, dn.a.id), undefined)
  const client = await createLibp2p({
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
  try {
    const t = await client.dial(multiaddr(addrOf(trainer)))
    const r = await requestTraining(client, t.remotePeer, JOB({ id: dn.a.id, version: 1 }))
    assert.equal(
      r.record.body.datanets.map((d) => [d.id, d.version, d.root]),
      [[dn.a.id, 1, dn.a.root]]
    )
    assert.is(await held(trainer, dn.a.id), dn.a.root, 'the copy stays (attribution uses it)')

    // nobody holds it: the error names the datanet and version and every peer asked (the requester
    // first, which does not speak the datanet exchange, then the owner, which lacks it)
    try {
      await requestTraining(client, t.remotePeer, JOB({ id: absent.id, version: 1 }))
      assert.unreachable('no peer holds it')
    } catch (err) {
      const e = err as { message: string; data?: { remoteCode?: string } }
      assert.is(e.data?.remoteCode, 'DATANET_NOT_FOUND', e.message)
      assert.match(e.message, `could not fetch datanet ${absent.id} version 1 from 2 peer(s)`)
      assert.match(e.message, client.peerId.toString().slice(-8))
      assert.match(e.message, owner.peerId.slice(-8))
    }
  } finally {
    await client.stop()
  }
})

test('a gateway (ModelFactory) job on a datanet the trainer lacks, no version named: the chain’s latest', async () => {
  const token = JSON.parse(readFileSync(join(root, 'trainer', 'admin.json'), 'utf8')).token as string
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${trainer.services.gateway!.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    return (await res.json()) as {
      id: string
      state: string
      error: string | null
      record: { body: { datanets: { id: string; version: number; root: string }[] } }
    }
  }
  let job = await call('POST', '/v1/training/jobs', JOB({ id: dn.b.id }))
  for (let i = 0; i < 600 && (job.state === 'queued' || job.state === 'running'); i++) {
    await new Promise((r) => setTimeout(r, 100))
    job = await call('GET', `/v1/training/jobs/${job.id}`)
  }
  assert.is(job.state, 'done', job.error ?? undefined)
  assert.equal(
    job.record.body.datanets.map((d) => [d.id, d.version, d.root]),
    [[dn.b.id, 1, dn.b.root]]
  )
})

const trainArgs = (out: string, spec: string, ...more: string[]) => [
  'train',
  '--model',
  fx.modelDir,
  '--out',
  join(root, out),
  '--datanet',
  spec,
  '--steps',
  '2',
  '--lr',
  '0.01',
  '--optimizer',
  'sgd',
  '--seed',
  '1',
  '--json',
  ...more
]
const lines = (out: string) =>
  out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))

test('openlora train --datanet without a running node copies it with --from, trusting --chain', async () => {
  const dataDir = join(root, 'cli')
  const r = await runCli(
    ...trainArgs(
      'cli-out',
      `${dn.c.id}@1`,
      '--from',
      addrOf(owner),
      '--chain',
      chainFile,
      '--data-dir',
      dataDir
    )
  )
  assert.is(r.code, 0, r.err)
  const ev = lines(r.out)
  const progress = ev.filter((l) => l.event === 'progress')
  assert.ok(progress.length > 0, 'the copy shows progress')
  assert.is(progress.at(-1).received, progress.at(-1).total)
  const fetched = ev.find((l) => l.event === 'datanet')
  assert.is(fetched.root, dn.c.root)
  assert.is(fetched.rootsFrom, 'chain')
  assert.is(ev.at(-1).event, 'done')
  const rec = JSON.parse(readFileSync(join(root, 'cli-out', 'training-record.json'), 'utf8'))
  assert.equal(rec.body.datanets[0].root, dn.c.root)
  // held now: a second run trains on the copy without asking anyone (no --from, no roots)
  const again = await runCli(...trainArgs('cli-out-2', dn.c.id, '--data-dir', dataDir))
  assert.is(again.code, 0, again.err)
  assert.not.ok(
    lines(again.out).some((l) => l.event === 'datanet' || l.event === 'progress'),
    'nothing fetched'
  )
  assert.is(lines(again.out).at(-1).event, 'done')
})

test('openlora train --datanet refusals say what was asked and what to do', async () => {
  const dataDir = join(root, 'cli-refused')
  const noRoots = await runCli(
    ...trainArgs('x', `${dn.d.id}@1`, '--from', addrOf(owner), '--data-dir', dataDir)
  )
  assert.is(noRoots.code, 1)
  assert.match(noRoots.err, `datanet ${dn.d.id} has no version 1 here, and there are no trusted roots`)
  assert.match(noRoots.err, /--root V=ROOT .*--chain FILE.*--unverified/)
  const nobody = await runCli(
    ...trainArgs(
      'x',
      `${dn.d.id}@1`,
      '--from',
      `/ip4/127.0.0.1/tcp/1/p2p/${owner.peerId}`,
      '--unverified',
      '--data-dir',
      dataDir
    )
  )
  assert.is(nobody.code, 1, nobody.err)
  assert.match(nobody.err, /no peer could be reached to fetch it: \/ip4\/127\.0\.0\.1\/tcp\/1\/p2p\//)
  const noPeers = await runCli(...trainArgs('x', `${dn.d.id}@1`, '--chain', chainFile, '--data-dir', dataDir))
  assert.match(noPeers.err, /no peer is named to fetch it from: give --from ADDR/)
  const noVersion = await runCli(...trainArgs('x', dn.d.id, '--from', addrOf(owner), '--data-dir', dataDir))
  assert.match(noVersion.err, /name the version \(ID@VERSION\)/)
  assert.not.ok(existsSync(join(root, 'x', 'training-record.json')))
})

test('openlora train --datanet with the data dir’s node running: the node fetches it and hands over the rows', async () => {
  assert.is(await held(trainer, dn.d.id), undefined)
  // the trainer's node holds its data dir: the command goes through its admin endpoint, and the
  // node trusts its own chain's roots and asks its peers (the owner)
  const r = await runCli(...trainArgs('node-out', `${dn.d.id}@1`, '--data-dir', join(root, 'trainer')))
  assert.is(r.code, 0, r.err)
  const ev = lines(r.out)
  const fetched = ev.find((l) => l.event === 'datanet')
  assert.equal([fetched.root, fetched.rootsFrom], [dn.d.root, 'chain'])
  assert.is(await held(trainer, dn.d.id), dn.d.root)
  const rec = JSON.parse(readFileSync(join(root, 'node-out', 'training-record.json'), 'utf8'))
  assert.is(rec.signer, trainer.peerId, "signed with the data dir's key")
  assert.is(rec.body.datanets[0].root, dn.d.root)
  // held now: the rows come from the node with nothing fetched
  const again = await runCli(...trainArgs('node-out-2', dn.d.id, '--data-dir', join(root, 'trainer')))
  assert.is(again.code, 0, again.err)
  assert.not.ok(lines(again.out).some((l) => l.event === 'datanet'))
})

test.run()
