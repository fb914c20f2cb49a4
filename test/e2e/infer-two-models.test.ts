// A node serving two base models fetches a missing adapter into the store of the model the job
// asked for (each store checks adapters against its own base model), and serves adapters from
// whichever of its stores holds them. Real libp2p, adverts, engine, ORT and LevelDB.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { InferClient } from '../../src/client/client.ts'
import { createClientHost } from '../../src/client/host.ts'
import { requireService } from '../../src/common/service.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { addrOf, type Fixtures, makeFixtures, sees, serving, startNode, until } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'infer-two-models-'))
let fx: Fixtures
let both: OpenLoraNode // serves the fixture model and a second one, holds no adapter
let holder: OpenLoraNode // serves the second model only, holds its adapter cold
let client: InferClient
let stopClient: () => Promise<void>
const second = join(root, 'second-model')

test.before(async () => {
  fx = await makeFixtures(root, 0)
  await makeModel({ out: second, preset: 'qwen2-tiny', seed: 8 })
  await makeAdapter({
    model: second,
    out: join(root, 'second-adapter'),
    rank: 4,
    targets: ['q_proj', 'v_proj'],
    seed: 9
  })
  both = await startNode(root, 'both', fx, { infer: { models: [fx.modelDir, second] } })
  holder = await startNode(root, 'holder', fx, { infer: { models: [second] }, bootstrap: [addrOf(both)] })
  ;({ client, stop: stopClient } = await createClientHost())
})

test.after(async () => {
  await stopClient?.()
  for (const n of [holder, both]) await n?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

test('a fetched adapter lands in the store of the model the job names, and is served from it', async () => {
  const [first, other] = serving(both)
    .models()
    .map((m) => m.modelId) as [string, string]
  assert.is(serving(holder).models()[0]!.modelId, other)
  const cid = (await serving(holder).store(other)!.import(join(root, 'second-adapter'))).cid
  await until('the two-model node sees the holder with the adapter', () => sees(both, holder, cid, ['cold']))

  const r = await client.infer(addrOf(both), {
    model: other,
    adapter: cid,
    promptIds: [1, 2, 3, 4],
    params: { maxNewTokens: 6 }
  })
  assert.is(r.servedBy, both.peerId, 'the entry fetched the adapter and served the job itself')
  assert.ok(r.verification?.ok, JSON.stringify(r.verification))
  assert.ok(await serving(both).store(other)!.has(cid), "in the second model's store")
  assert.not.ok(await serving(both).store(first)!.has(cid), "not in the first model's store")
  // the holder's own engine gives the same greedy tokens for that adapter
  const local: number[] = []
  for await (const ev of serving(holder).generate({
    model: other,
    adapter: cid,
    promptIds: [1, 2, 3, 4],
    params: { maxNewTokens: 6 }
  }))
    if (ev.type === 'token') local.push(ev.id)
  assert.equal(r.outputIds, local)

  // and the two-model node now serves that adapter to peers over the exchange, from the second
  // model's store (its source looks through every store)
  const files = await requireService(holder.services, 'adapterExchange').fetchFrom(cid, both.peerId)
  const want = await serving(holder).store(other)!.files(cid)
  for (const name of ['adapter_config.json', 'adapter_model.safetensors'] as const)
    assert.ok(Buffer.from(files[name]).equals(Buffer.from(want[name])), `${name} bytes`)
})

test.run()
