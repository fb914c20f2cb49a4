// /openlora/train/1.0.0 between real libp2p hosts on 127.0.0.1: a peer asks a node to train on a
// datanet it holds and gets progress frames, then the adapter CID with the node's signed record
// (checked by the client); a node that does not offer training, and a peer that does not speak
// the protocol, are both reported as TRAINING_NOT_OFFERED; malformed and unknown-model requests
// are refused with a clear error and the node keeps serving.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { Level } from 'level'
import { createLibp2p } from 'libp2p'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DatanetStore } from '../../src/attribution/datanet-store.ts'
import { z } from '../../src/common/schema.ts'
import { TRAIN_PROTOCOL } from '../../src/protocols/training/constants.ts'
import { localTrainingProvider } from '../../src/protocols/training/provider.ts'
import { requestTraining, TrainService } from '../../src/protocols/training/train-protocol.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { adapterCid } from '../../src/runtime/formats/identity.ts'

const dir = mkdtempSync(join(tmpdir(), 'openlora-train-proto-'))
const model = join(dir, 'tiny')
await makeModel({ out: model, preset: 'tiny' })

async function host(key?: PrivateKey): Promise<Libp2p> {
  return createLibp2p({
    privateKey: key ?? (await generateKeyPair('Ed25519')),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
}

const key = await generateKeyPair('Ed25519')
const trainer = await host(key)
const declines = await host()
const stranger = await host()
const client = await host()
const db = new Level<string, Uint8Array>(join(dir, 'db'), { valueEncoding: 'view' })
await db.open()
const store = new DatanetStore({ db, dataDir: join(dir, 'datanets') })
const alice = '0x00000000000000000000000000000000000a11ce'
const dn = await store.createDatanet({ name: 'proverbs', owner: alice })
for (const text of ['a stitch in time saves nine', 'knowledge is power', 'better late than never'])
  await store.contribute(dn.id, { text, contributor: alice })
await store.publish(dn.id)
const outRoot = mkdtempSync(join(dir, 'jobs-'))
const service = new TrainService({
  host: trainer,
  provider: localTrainingProvider({
    store,
    models: { tiny: model },
    outRoot,
    signer: { peerId: trainer.peerId.toString(), sign: (d) => key.sign(d) }
  })
})
await service.start()
const refuser = new TrainService({ host: declines })
await refuser.start()
for (const h of [trainer, declines, stranger]) await client.dial(h.getMultiaddrs()[0]!)

const JOB = {
  model: 'tiny',
  datanet: { id: dn.id, version: 1 },
  steps: 3,
  lr: 0.01,
  optimizer: 'adamw' as const,
  rank: 4,
  seed: 2
}

test('a peer trains an adapter on the node: progress, CID and the signed record', async () => {
  const progress: number[] = []
  const r = await requestTraining(client, trainer.peerId, JOB, { onProgress: (p) => progress.push(p.step) })
  assert.equal(progress, [0, 1, 2])
  assert.is(r.record.signer, trainer.peerId.toString())
  assert.is(r.record.body.adapterCid, r.cid)
  assert.equal(r.record.body.datanets, [
    { id: dn.id, version: 1, root: (await store.getVersion(dn.id, 1)).root, contributors: [alice] }
  ])
  assert.is(r.record.body.losses.length, 3)
  const { readdirSync } = await import('node:fs')
  const jobs = readdirSync(outRoot)
  assert.is(jobs.length, 1)
  assert.is(await adapterCid(join(outRoot, jobs[0]!)), r.cid, 'the node holds the adapter it names')
})

test('a node that does not offer training, or does not speak the protocol, is a clear refusal', async () => {
  for (const peer of [declines.peerId, stranger.peerId]) {
    try {
      await requestTraining(client, peer, JOB)
      assert.unreachable('refused')
    } catch (err) {
      assert.is((err as { code?: string }).code, 'TRAINING_NOT_OFFERED', String(err))
      assert.match(String(err), /does not offer training/)
    }
  }
})

test('malformed and unknown-model requests are refused by name; the node keeps serving', async () => {
  const raw = async (body: string) => {
    const s = await client.dialProtocol(trainer.peerId, TRAIN_PROTOCOL)
    const lp = lpStream(s, { maxDataLength: 1 << 20 })
    await lp.write(new TextEncoder().encode(body))
    const f = JSON.parse(new TextDecoder().decode((await lp.read()).subarray()))
    await s.close()
    return f
  }
  const bad = await raw(JSON.stringify({ ...JOB, steps: 1_000_000 }))
  assert.is(bad.t, 'error')
  assert.is(bad.code, 'TRAINING_INPUT_INVALID')
  assert.match(bad.message, /steps/)
  assert.is((await raw('not json')).code, 'TRAINING_INPUT_INVALID')
  try {
    await requestTraining(client, trainer.peerId, { ...JOB, model: 'gpt-5' })
    assert.unreachable('refused')
  } catch (err) {
    assert.match(String(err), /this node trains tiny; not "gpt-5"/)
  }
  const again = await requestTraining(client, trainer.peerId, { ...JOB, steps: 1 })
  assert.ok(again.cid.length > 0, 'still serving')
})

test.after(async () => {
  await service.stop()
  await refuser.stop()
  for (const h of [client, trainer, declines, stranger]) await h.stop()
  await db.close()
})

test('a 1.0.0 client (no payment fields, strict frame schemas) still reads every frame', async () => {
  // the frames as the first release's client checked them (z.strictObject: no unknown keys)
  const v1 = z.discriminatedUnion('t', [
    z.strictObject({ t: z.literal('progress'), step: z.int(), steps: z.int(), loss: z.number() }),
    z.strictObject({ t: z.literal('done'), cid: z.string(), record: z.string() }),
    z.strictObject({ t: z.literal('error'), code: z.string(), message: z.string() })
  ])
  const stream = await client.dialProtocol(trainer.peerId, TRAIN_PROTOCOL)
  const lp = lpStream(stream, { maxDataLength: 1024 * 1024 })
  await lp.write(new TextEncoder().encode(JSON.stringify({ ...JOB, steps: 2 })))
  const kinds: string[] = []
  for (;;) {
    const f = v1.parse(JSON.parse(new TextDecoder().decode((await lp.read()).subarray())))
    kinds.push(f.t)
    if (f.t !== 'progress') break
  }
  await stream.close()
  assert.equal(kinds, ['progress', 'progress', 'done'])
})

test.run()
