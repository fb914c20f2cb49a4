// Training wired into `openlora start`: a node with `training.offer: true` trains a job from a
// peer over /openlora/train/1.0.0 on a datanet it holds and a job from its gateway's admin routes
// (what a ModelFactory page calls), both over the models it serves, on one datanet or several,
// keeping each adapter in its store with the record's datanets as provenance; a node with the default
// config refuses remote jobs with TRAINING_NOT_OFFERED and its gateway says training_not_offered.
// Remote jobs name fused modules (Phi-3's qkv_proj / gate_up_proj, BLOOM's query_key_value, …) as
// local --targets does; a gateway job and a protocol job never train at once (one slot per node:
// the protocol is refused BUSY while a gateway job trains, a gateway job waits while a peer's does).
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
let phi3Id: string
let bloomId: string
const FAMILIES = join(import.meta.dirname, '..', 'fixtures', 'families')
const alice = '0x00000000000000000000000000000000000a11ce'

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'openlora-train-node-'))
  fx = await makeFixtures(root, 0)
  modelId = modelIdOf(await readModelConfig(fx.modelDir), fx.modelDir)
  phi3Id = modelIdOf(await readModelConfig(join(FAMILIES, 'phi3')), join(FAMILIES, 'phi3'))
  bloomId = modelIdOf(await readModelConfig(join(FAMILIES, 'bloom')), join(FAMILIES, 'bloom'))
  trainer = await startNode(root, 'trainer', fx, {
    admin: true,
    // the Phi-3 fixture holds 256 positions
    infer: { models: [fx.modelDir, join(FAMILIES, 'phi3'), join(FAMILIES, 'bloom')], maxSeqLen: 256 },
    config: { training: { offer: true } }
  })
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
  const client = await bareClient()
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
const bareClient = () =>
  createLibp2p({
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test("the gateway's admin training routes run a job to done", async () => {
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

test('remote jobs name fused modules as local --targets does; a module the model lacks is refused by name', async () => {
  const client = await bareClient()
  try {
    const t = await client.dial(multiaddr(addrOf(trainer)))
    const phi = await requestTraining(client, t.remotePeer, {
      ...JOB(),
      model: phi3Id,
      steps: 1,
      targets: ['qkv_proj', 'gate_up_proj']
    })
    assert.equal(phi.record.body.lora.targets, ['qkv_proj', 'gate_up_proj'])
    const bloom = await requestTraining(client, t.remotePeer, {
      ...JOB(),
      model: bloomId,
      steps: 1,
      targets: ['query_key_value', 'dense_4h_to_h']
    })
    assert.equal(bloom.record.body.lora.targets, ['query_key_value', 'dense_4h_to_h'])
    // adapted modules join the store like any trained adapter (served, fetched by CID)
    assert.is(await trainer.services.serving!.adapterTier(bloomId, bloom.cid), 'cold')
    try {
      await requestTraining(client, t.remotePeer, { ...JOB(), steps: 1, targets: ['query_key_value'] })
      assert.unreachable('a Llama has no query_key_value')
    } catch (err) {
      const e = err as { message: string; data?: { remoteCode?: string } }
      assert.is(e.data?.remoteCode, 'TRAINING_INPUT_INVALID', e.message)
      assert.match(e.message, /"query_key_value" is not a Linear of LlamaForCausalLM; allowed: q_proj/)
    }
  } finally {
    await client.stop()
  }
  // the CLI's --remote takes them too, and the gateway's job body
  const r = await runCli(
    'train',
    '--remote',
    addrOf(trainer),
    '--model',
    phi3Id,
    '--datanet',
    datanet,
    '--steps',
    '1',
    '--lr',
    '0.01',
    '--optimizer',
    'sgd',
    '--targets',
    'gate_up_proj',
    '--json'
  )
  assert.is(r.code, 0, r.err)
  assert.ok(JSON.parse(r.out.trim().split('\n').at(-1)!).cid)
  const g = await call(trainer, 'POST', '/v1/training/jobs', {
    ...JOB(),
    model: phi3Id,
    steps: 1,
    targets: ['qkv_proj']
  })
  assert.is(g.status, 202, JSON.stringify(g.json))
  let job = g.json
  for (let i = 0; i < 600 && (job.state === 'queued' || job.state === 'running'); i++) {
    await sleep(100)
    job = (await call(trainer, 'GET', `/v1/training/jobs/${g.json.id}`)).json
  }
  assert.is(job.state, 'done', job.error ?? undefined)
})

test('one training slot: a gateway job and a protocol job never train at once', async () => {
  const client = await bareClient()
  try {
    const t = await client.dial(multiaddr(addrOf(trainer)))
    // a gateway job trains: a peer's job is refused at once, with a retry estimate
    const long = await call(trainer, 'POST', '/v1/training/jobs', { ...JOB(), steps: 400 })
    assert.is(long.status, 202)
    let job = long.json
    while (job.state === 'queued' || (job.state === 'running' && job.losses.length === 0)) {
      await sleep(20)
      job = (await call(trainer, 'GET', `/v1/training/jobs/${long.json.id}`)).json
    }
    assert.is(job.state, 'running', 'the gateway job is training')
    try {
      await requestTraining(client, t.remotePeer, { ...JOB(), steps: 1 })
      assert.unreachable('busy')
    } catch (err) {
      const e = err as { message: string; data?: { remoteCode?: string } }
      assert.is(e.data?.remoteCode, 'BUSY', e.message)
      assert.match(e.message, `training another job (gateway job ${long.json.id}, step `)
      assert.match(e.message, /try again in about \d+ s/)
    }
    for (let i = 0; i < 1200 && job.state === 'running'; i++) {
      await sleep(50)
      job = (await call(trainer, 'GET', `/v1/training/jobs/${long.json.id}`)).json
    }
    assert.is(job.state, 'done', job.error ?? undefined)

    // a peer's job trains: a gateway job queues behind it and trains only after it ends
    let queuedId = ''
    const seen: { state: string; losses: number }[] = []
    let polling: Promise<void> = Promise.resolve()
    const remote = requestTraining(
      client,
      t.remotePeer,
      { ...JOB(), steps: 60 },
      {
        onProgress: ({ step }) => {
          if (step !== 0) return
          polling = (async () => {
            const q = await call(trainer, 'POST', '/v1/training/jobs', { ...JOB(), steps: 2 })
            queuedId = q.json.id
          })()
        }
      }
    )
    // A sample counts when the peer's job held the node's slot both before and after the request
    // (read in process), so the answer was given while it trained. The peer job's end reaches the
    // client later than the slot's release (its last frames and record are still in flight), so a
    // sample taken then may rightly see the gateway job running.
    const slot = trainer.services.training!.slot
    const peerHolds = () => slot.describe().startsWith('a job from ')
    const sample = (async () => {
      while (!queuedId) await sleep(5)
      for (let done = false; !done; ) {
        const held = peerHolds()
        const j = (await call(trainer, 'GET', `/v1/training/jobs/${queuedId}`)).json
        if (held && peerHolds()) seen.push({ state: j.state, losses: j.losses.length })
        done = await Promise.race([remote.then(() => true), sleep(30).then(() => false)])
      }
    })()
    const r = await remote
    await polling
    await sample
    assert.is(r.record.body.hyper.steps, 60)
    assert.ok(seen.length > 0, 'the gateway job was sampled while the peer job trained')
    assert.ok(
      seen.every((x) => x.state === 'queued' && x.losses === 0),
      `the gateway job waited: ${JSON.stringify(seen)}`
    )
    let after = (await call(trainer, 'GET', `/v1/training/jobs/${queuedId}`)).json
    for (let i = 0; i < 600 && (after.state === 'queued' || after.state === 'running'); i++) {
      await sleep(50)
      after = (await call(trainer, 'GET', `/v1/training/jobs/${queuedId}`)).json
    }
    assert.is(after.state, 'done', after.error ?? undefined)
  } finally {
    await client.stop()
  }
})

test.run()
