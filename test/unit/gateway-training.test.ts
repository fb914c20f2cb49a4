// The gateway's training-job routes (what a ModelFactory page drives) on a real fastify app with
// the gateway's zod compilers, error handler and KeyAuth: an admin starts a job on a datanet the
// node holds, polls it to `done` with its loss curve, CID and signed record; non-admins, bad
// bodies, unknown ids and a node without training are refused with OpenAI-shaped errors.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import Fastify from 'fastify'
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod'
import { Level } from 'level'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DatanetStore } from '../../src/attribution/datanet-store.ts'
import { toHttpError } from '../../src/gateway/errors.ts'
import { KeyAuth, KeyStore } from '../../src/gateway/keys.ts'
import { trainingRoutes } from '../../src/gateway/routes/training.ts'
import { TrainingJobs } from '../../src/gateway/training-jobs.ts'
import { localTrainingProvider } from '../../src/protocols/training/provider.ts'
import { verifyTrainingRecord } from '../../src/protocols/training/record-verify.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'

const dir = mkdtempSync(join(tmpdir(), 'openlora-gw-train-'))
const model = join(dir, 'tiny')
await makeModel({ out: model, preset: 'tiny' })
const db = new Level<string, Uint8Array>(join(dir, 'db'), { valueEncoding: 'view' })
await db.open()
const store = new DatanetStore({ db, dataDir: join(dir, 'datanets') })
const alice = '0x00000000000000000000000000000000000a11ce'
const dn = await store.createDatanet({ name: 'proverbs', owner: alice })
for (const text of ['a stitch in time saves nine', 'knowledge is power'])
  await store.contribute(dn.id, { text, contributor: alice })
await store.publish(dn.id)
const dn2 = await store.createDatanet({ name: 'sayings', owner: alice })
await store.contribute(dn2.id, { text: 'fortune favours the bold', contributor: alice })
await store.publish(dn2.id)
const key = await generateKeyPair('Ed25519')
const jobs = new TrainingJobs(
  localTrainingProvider({
    store,
    models: { tiny: model },
    outRoot: mkdtempSync(join(dir, 'jobs-')),
    signer: { peerId: peerIdFromPrivateKey(key).toString(), sign: (d) => key.sign(d) }
  })
)
const ADMIN = 'admin-token-for-this-test-0123456789'
const auth = new KeyAuth(new KeyStore(dir), false, () => ADMIN)

async function app(training?: TrainingJobs) {
  const a = Fastify({ logger: false })
  a.setValidatorCompiler(validatorCompiler)
  a.setSerializerCompiler(serializerCompiler)
  a.setErrorHandler((err, _req, reply) => {
    const { status, body } = toHttpError(err)
    void reply.code(status).send(body)
  })
  await a.register(trainingRoutes, {
    training,
    requireAdmin: (req) =>
      auth.requireAdmin((req as { headers: { authorization?: string } }).headers.authorization)
  })
  return a
}
const admin = { authorization: `Bearer ${ADMIN}` }
const JOB = { model: 'tiny', datanet: { id: dn.id }, steps: 3, lr: 0.01, optimizer: 'adamw', seed: 1 }

test('an admin starts a job and polls it to done: losses, CID, signed record', async () => {
  const a = await app(jobs)
  const start = await a.inject({ method: 'POST', url: '/v1/training/jobs', headers: admin, payload: JOB })
  assert.is(start.statusCode, 202, start.body)
  const id = start.json().id as string
  let job = start.json()
  for (let i = 0; i < 600 && (job.state === 'queued' || job.state === 'running'); i++) {
    await new Promise((r) => setTimeout(r, 50))
    job = (await a.inject({ method: 'GET', url: `/v1/training/jobs/${id}`, headers: admin })).json()
  }
  assert.is(job.state, 'done', job.error)
  assert.is(job.losses.length, 3)
  assert.is(job.record.body.adapterCid, job.cid)
  assert.is(job.record.body.datanets[0].id, dn.id)
  assert.ok(await verifyTrainingRecord(job.record))
  const list = (await a.inject({ method: 'GET', url: '/v1/training/jobs', headers: admin })).json()
  assert.is(list.data[0].id, id)
  await a.close()
})

test('refusals: not admin, bad body, unknown model, unknown id, node without training', async () => {
  const a = await app(jobs)
  const anon = await a.inject({ method: 'POST', url: '/v1/training/jobs', payload: JOB })
  assert.is(anon.statusCode, 401)
  const bad = await a.inject({
    method: 'POST',
    url: '/v1/training/jobs',
    headers: admin,
    payload: { ...JOB, steps: 0 }
  })
  assert.is(bad.statusCode, 400)
  assert.match(bad.body, /steps/)
  const unknown = await a.inject({ method: 'GET', url: '/v1/training/jobs/nope', headers: admin })
  assert.is(unknown.statusCode, 404)
  const wrongModel = await a.inject({
    method: 'POST',
    url: '/v1/training/jobs',
    headers: admin,
    payload: { ...JOB, model: 'gpt-5' }
  })
  const id = wrongModel.json().id
  let job = wrongModel.json()
  for (let i = 0; i < 200 && job.state !== 'failed' && job.state !== 'done'; i++) {
    await new Promise((r) => setTimeout(r, 20))
    job = (await a.inject({ method: 'GET', url: `/v1/training/jobs/${id}`, headers: admin })).json()
  }
  assert.is(job.state, 'failed')
  assert.match(job.error, /this node trains tiny; not "gpt-5"/)
  await a.close()
  const none = await app()
  const off = await none.inject({ method: 'POST', url: '/v1/training/jobs', headers: admin, payload: JOB })
  assert.is(off.statusCode, 400)
  assert.is(off.json().error.code, 'training_not_offered')
  await none.close()
})

async function finished(a: Awaited<ReturnType<typeof app>>, id: string) {
  let job = (await a.inject({ method: 'GET', url: `/v1/training/jobs/${id}`, headers: admin })).json()
  for (let i = 0; i < 600 && (job.state === 'queued' || job.state === 'running'); i++) {
    await new Promise((r) => setTimeout(r, 50))
    job = (await a.inject({ method: 'GET', url: `/v1/training/jobs/${id}`, headers: admin })).json()
  }
  return job
}

test('several datanets: the record names each in order; one named twice is refused', async () => {
  const a = await app(jobs)
  const start = await a.inject({
    method: 'POST',
    url: '/v1/training/jobs',
    headers: admin,
    payload: { ...JOB, steps: 1, moreDatanets: [{ id: dn2.id, version: 1 }] }
  })
  assert.is(start.statusCode, 202, start.body)
  const job = await finished(a, start.json().id)
  assert.is(job.state, 'done', job.error)
  assert.equal(
    job.record.body.datanets.map((d: { id: string }) => d.id),
    [dn.id, dn2.id]
  )
  const twice = await a.inject({
    method: 'POST',
    url: '/v1/training/jobs',
    headers: admin,
    payload: { ...JOB, moreDatanets: [{ id: dn.id }] }
  })
  const failed = await finished(a, twice.json().id)
  assert.is(failed.state, 'failed')
  assert.match(failed.error, /named twice/)
  await a.close()
})

test('register: a node without a chain says so; unknown jobs, unfinished jobs and bad fees are refused', async () => {
  const a = await app(jobs)
  const done = (await a.inject({ method: 'GET', url: '/v1/training/jobs', headers: admin }))
    .json()
    .data.find((j: { state: string }) => j.state === 'done')
  const reg = (id: string, payload?: unknown, headers = admin) =>
    a.inject({ method: 'POST', url: `/v1/training/jobs/${id}/register`, headers, payload: payload as object })
  const noChain = await reg(done.id, {})
  assert.is(noChain.statusCode, 400, noChain.body)
  assert.is(noChain.json().error.code, 'chain_not_configured')
  assert.match(noChain.json().error.message, /no chain configured/)
  assert.is((await reg(done.id, {}, {} as typeof admin)).statusCode, 401)
  assert.is((await reg('nope', {})).statusCode, 404)
  const fee = await reg(done.id, { feePer1kTokens: '-1' })
  assert.is(fee.statusCode, 400)
  assert.match(fee.body, /feePer1kTokens/)
  const failed = (await a.inject({ method: 'GET', url: '/v1/training/jobs', headers: admin }))
    .json()
    .data.find((j: { state: string }) => j.state === 'failed')
  const early = await reg(failed.id, {})
  assert.is(early.statusCode, 409)
  assert.is(early.json().error.code, 'training_job_not_done')
  await a.close()
})

test.after(async () => {
  await jobs.close()
  await db.close()
})

test.run()
