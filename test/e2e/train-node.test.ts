// Training wired into `openlora start`: a node with `training.offer: true` trains a job from a
// peer over /openlora/train/1.0.0 on a datanet it holds and a job from its gateway's admin routes
// (what a ModelFactory page calls), both over the models it serves, on one datanet or several,
// keeping each adapter in its store with the record's datanets as provenance; a node with the default
// config refuses remote jobs with TRAINING_NOT_OFFERED and its gateway says training_not_offered.
import { readFileSync } from 'node:fs'
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
import type { OpenLoraNode } from '../../src/node/node.ts'
import { requestTraining } from '../../src/protocols/training/train-protocol.ts'
import { modelIdOf } from '../../src/runtime/model/config.ts'
import { readModelConfig } from '../../src/runtime/model/index.ts'
import { runCli } from '../helpers/cli.ts'
import { addrOf, type Fixtures, makeFixtures, startNode } from './infer-fixture.ts'

let root: string
let fx: Fixtures
let trainer: OpenLoraNode
let plain: OpenLoraNode
let modelId: string
let datanet: string
let second: string
const alice = '0x00000000000000000000000000000000000a11ce'

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'openlora-train-node-'))
  fx = await makeFixtures(root, 0)
  modelId = modelIdOf(await readModelConfig(fx.modelDir), fx.modelDir)
  trainer = await startNode(root, 'trainer', fx, { admin: true, config: { training: { offer: true } } })
  plain = await startNode(root, 'plain', fx, { admin: true })
  const store = trainer.services.attribution!.store
  const dn = await store.createDatanet({ name: 'proverbs', owner: alice })
  for (const text of ['a stitch in time saves nine', 'knowledge is power', 'better late than never'])
    await store.contribute(dn.id, { text, contributor: alice })
  await store.publish(dn.id)
  datanet = dn.id
  const dn2 = await store.createDatanet({ name: 'sayings', owner: alice })
  await store.contribute(dn2.id, { text: 'fortune favours the bold', contributor: alice })
  await store.publish(dn2.id)
  second = dn2.id
})
test.after(async () => {
  await trainer?.stop()
  await plain?.stop()
  await rm(root, { recursive: true, force: true })
})

interface Job {
  id: string
  state: string
  error: string | null
  losses: number[]
  cid: string
  record: { body: { adapterCid: string } }
}
interface ErrorBody {
  error: { code: string }
}

const JOB = () => ({
  model: modelId,
  datanet: { id: datanet },
  steps: 2,
  lr: 0.01,
  optimizer: 'adamw' as const,
  seed: 3
})

test('a peer has the node train an adapter; a node that does not offer training refuses', async () => {
  const client = await createLibp2p({
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
  try {
    const t = await client.dial(multiaddr(addrOf(trainer)))
    const r = await requestTraining(client, t.remotePeer, JOB())
    assert.is(r.record.signer, trainer.peerId)
    assert.is(r.record.body.datanets[0]!.id, datanet)
    assert.is(r.record.body.baseModel.id, modelId)
    // the adapter is served by the trainer (peers fetch it by CID) with the record's provenance
    assert.is(await trainer.services.serving!.adapterTier(modelId, r.cid), 'cold')
    const both = await requestTraining(client, t.remotePeer, {
      ...JOB(),
      moreDatanets: [{ id: second, version: 1 }]
    })
    assert.equal(
      both.record.body.datanets.map((d) => d.id),
      [datanet, second]
    )
    const provenance = await trainer.services.attribution!.provenance.get(both.cid)
    assert.equal(
      provenance?.datanets.map((d) => [d.id, d.version, d.bp]).sort(),
      [
        [datanet, 1, 5000],
        [second, 1, 5000]
      ].sort()
    )
    const p = await client.dial(multiaddr(addrOf(plain)))
    try {
      await requestTraining(client, p.remotePeer, JOB())
      assert.unreachable('refused')
    } catch (err) {
      assert.is((err as { code?: string }).code, 'TRAINING_NOT_OFFERED', String(err))
    }
  } finally {
    await client.stop()
  }
})

test('openlora train --remote sends the job and writes the checked record', async () => {
  const out = join(root, 'remote-out')
  const r = await runCli(
    'train',
    '--remote',
    addrOf(trainer),
    '--model',
    modelId,
    '--datanet',
    `${datanet}@1`,
    '--steps',
    '2',
    '--lr',
    '0.01',
    '--optimizer',
    'sgd',
    '--targets',
    'q_proj,k_proj',
    '--json',
    '--out',
    out
  )
  assert.is(r.code, 0, r.err)
  const lines = r.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  assert.equal(
    lines.filter((l) => l.event === 'step').map((l) => l.step),
    [0, 1]
  )
  const done = lines.at(-1)
  assert.is(done.trainer, trainer.peerId)
  const rec = JSON.parse(readFileSync(join(out, 'training-record.json'), 'utf8'))
  assert.is(rec.body.adapterCid, done.cid)
  assert.equal(rec.body.lora.targets, ['q_proj', 'k_proj'])
  const refused = await runCli(
    'train',
    '--remote',
    addrOf(plain),
    '--model',
    modelId,
    '--datanet',
    datanet,
    '--steps',
    '1',
    '--lr',
    '0.01',
    '--optimizer',
    'sgd'
  )
  assert.is.not(refused.code, 0)
  assert.match(refused.err, /does not offer training/)
  const local = await runCli(
    'train',
    '--remote',
    addrOf(trainer),
    '--model',
    modelId,
    '--datanet',
    datanet,
    '--tokens',
    'x.json',
    '--steps',
    '1',
    '--lr',
    '0.01',
    '--optimizer',
    'sgd'
  )
  assert.match(local.err, /--tokens is a local option/)
})

test("the gateway's admin training routes run a job to done", async () => {
  const call = async (node: OpenLoraNode, method: string, path: string, body?: unknown) => {
    const token = JSON.parse(
      readFileSync(join(root, node === trainer ? 'trainer' : 'plain', 'admin.json'), 'utf8')
    ).token as string
    const res = await fetch(`${node.services.gateway!.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    return { status: res.status, json: (await res.json()) as Job }
  }
  const start = await call(trainer, 'POST', '/v1/training/jobs', JOB())
  assert.is(start.status, 202, JSON.stringify(start.json))
  let job = start.json
  for (let i = 0; i < 600 && (job.state === 'queued' || job.state === 'running'); i++) {
    await new Promise((r) => setTimeout(r, 100))
    job = (await call(trainer, 'GET', `/v1/training/jobs/${start.json.id}`)).json
  }
  assert.is(job.state, 'done', job.error ?? undefined)
  assert.is(job.losses.length, 2)
  assert.is(job.record.body.adapterCid, job.cid)
  const off = await call(plain, 'POST', '/v1/training/jobs', JOB())
  assert.is(off.status, 400)
  assert.is((off.json as unknown as ErrorBody).error.code, 'training_not_offered')
})

test.run()
