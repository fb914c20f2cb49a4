// A node serves a job with a PEFT adapter on a non-Llama family (the committed Gemma 2 fixture:
// sandwich norms, soft-capping, sliding window): its advert names the family, a second node's
// PeerTable sees it, and a client's job through that second node comes back with the greedy
// tokens transformers + peft produced for the same adapter. Real libp2p, adverts, engine, ORT.
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { InferClient } from '../../src/client/client.ts'
import { createClientHost } from '../../src/client/host.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { addrOf, type Fixtures, makeFixtures, sees, serving, startNode, until } from './infer-fixture.ts'

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'families', 'gemma2')
const golden = JSON.parse(readFileSync(join(FIXTURE, 'goldens.json'), 'utf8')) as {
  prompt_ids: number[]
  adapters: Record<string, { tokens: number[] }>
}
const root = await mkdtemp(join(tmpdir(), 'infer-family-'))
let fx: Fixtures
let gemma: OpenLoraNode // serves the Gemma 2 fixture and holds its adapter
let entry: OpenLoraNode // serves nothing; routes the client's job
let client: InferClient
let stopClient: () => Promise<void>

test.before(async () => {
  fx = await makeFixtures(root, 0)
  gemma = await startNode(root, 'gemma', fx, { infer: { models: [FIXTURE], maxSeqLen: 256 } })
  entry = await startNode(root, 'entry', fx, { serve: false, bootstrap: [addrOf(gemma)] })
  ;({ client, stop: stopClient } = await createClientHost())
})

test.after(async () => {
  await stopClient?.()
  for (const n of [entry, gemma]) await n?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

test('a Gemma 2 node advertises its family and serves an adapter job with the reference tokens', async () => {
  const [model] = serving(gemma).models()
  assert.is(model!.family, 'gemma2')
  const cid = (await serving(gemma).store(model!.modelId)!.import(join(FIXTURE, 'adapter-all'))).cid
  await until('the entry sees the Gemma node holding the adapter', () =>
    sees(entry, gemma, cid, ['cold', 'warm', 'hot'])
  )
  const seen = entry.peerTable.query({ model: model!.modelId }).find((m) => m.peerId === gemma.peerId)
  assert.equal(
    seen?.advert.models.map((m) => m.family),
    ['gemma2']
  )

  const want = golden.adapters.all!.tokens.slice(0, 8)
  const r = await client.infer(addrOf(entry), {
    model: model!.modelId,
    adapter: cid,
    promptIds: golden.prompt_ids,
    params: { maxNewTokens: want.length }
  })
  assert.is(r.servedBy, gemma.peerId)
  assert.ok(r.verification?.ok, JSON.stringify(r.verification))
  assert.equal(r.outputIds, want)
})

test.run()
