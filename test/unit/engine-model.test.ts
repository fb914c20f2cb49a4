// The engine on the real runtime: a random tiny Llama checkpoint loaded into ONNX Runtime, real
// PEFT adapters in a real AdapterStore, real sampling. Greedy outputs of requests batched with
// others (different adapters, different phases) must equal the same requests run one at a time.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadPeftAdapter, type PeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { AdapterStore } from '../../src/runtime/adapters/store.ts'
import { Engine } from '../../src/runtime/engine/engine.ts'
import type { TokenEvent } from '../../src/runtime/engine/types.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { generate } from '../../src/runtime/generate.ts'
import { type LoadedModel, loadModel } from '../../src/runtime/model/index.ts'
import { sample } from '../../src/runtime/sampling.ts'
import { Tokenizer } from '../../src/runtime/tokenizer.ts'

const dir = mkdtempSync(join(tmpdir(), 'engine-model-'))
const MODEL = join(dir, 'model')
const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']

let model: LoadedModel
let store: AdapterStore<PeftAdapter>
const cids: string[] = []

test.before(async () => {
  await makeModel({ out: MODEL, preset: 'tiny', seed: 3 })
  // 50 adapters: q/v rank 8, all seven projections at rank 16, and MLP-only rank 4
  for (let i = 0; i < 50; i++) {
    const kind = i % 3
    await makeAdapter({
      model: MODEL,
      out: join(dir, `a${i}`),
      rank: [8, 16, 4][kind]!,
      targets: kind === 0 ? ['q_proj', 'v_proj'] : kind === 1 ? ALL : ['gate_proj', 'up_proj', 'down_proj'],
      seed: 100 + i
    })
  }
  // 9 slots (8 usable) for 50 adapters: serving them all forces evictions while rows run
  model = await loadModel(MODEL, {
    cacheDir: join(dir, 'cache'),
    maxBatch: 8,
    maxSeqLen: 128,
    intraOpThreads: 1,
    pool: { slots: 9, maxRank: 16, targets: ALL }
  })
  Object.assign(model, { tokenizer: await Tokenizer.fromDir(MODEL) })
  store = new AdapterStore<PeftAdapter>(
    { dir: join(dir, 'store') },
    {
      model: { modelId: model.modelId, config: model.config, pools: model.pools },
      loadAdapter: loadPeftAdapter
    }
  )
  await store.start()
  for (let i = 0; i < 50; i++) cids.push((await store.import(join(dir, `a${i}`))).cid)
})

test.after(async () => {
  await store?.stop()
  rmSync(dir, { recursive: true, force: true })
})

function engineWith(maxBatch: number): Engine {
  const e = new Engine(
    { limits: { maxBatch, maxSeqLen: 128, maxQueued: 512, prefillChunk: 8 } },
    { models: [{ model, adapters: store }], sample }
  )
  e.start()
  return e
}

async function run(
  e: Engine,
  req: {
    adapter: string | null
    promptIds: number[]
    max: number
    signal?: AbortSignal
    onToken?: () => void
  }
) {
  const tokens: number[] = []
  for await (const ev of e.generate({
    model: model.modelId,
    adapter: req.adapter,
    promptIds: req.promptIds,
    params: { maxNewTokens: req.max },
    signal: req.signal
  })) {
    if (ev.type === 'token') {
      tokens.push(ev.id)
      req.onToken?.()
    } else return { tokens, done: ev as Extract<TokenEvent, { type: 'done' }> }
  }
  throw new Error('no done event')
}

const requests = Array.from({ length: 200 }, (_, i) => ({
  adapter: i % 7 === 0 ? null : `#${(i * 11) % 50}`,
  promptIds: Array.from({ length: 3 + ((i * 5) % 20) }, (_, k) => 10 + ((i * 31 + k * 17) % 400)),
  max: 3 + (i % 6)
}))
const cidOf = (a: string | null) => (a === null ? null : cids[Number(a.slice(1))]!)
const alone: number[][] = []

test('each request alone (batch of one): greedy tokens, adapters change the output', async () => {
  const e = engineWith(1)
  try {
    for (const r of requests) alone.push((await run(e, { ...r, adapter: cidOf(r.adapter) })).done.outputIds)
  } finally {
    await e.stop()
  }
  assert.ok(alone.reduce((n, o) => n + o.length, 0) > 400, 'most requests generate several tokens')
  // the same prompt with and without an adapter differs somewhere, or the adapter was not applied
  const p = [10, 20, 30, 40]
  const e2 = engineWith(1)
  try {
    const base = await run(e2, { adapter: null, promptIds: p, max: 8 })
    const withA = await Promise.all(
      [1, 2, 3].map((i) => run(e2, { adapter: cids[i]!, promptIds: p, max: 8 }))
    )
    assert.ok(withA.some((w) => w.done.outputIds.join() !== base.done.outputIds.join()))
  } finally {
    await e2.stop()
  }
})

test('200 concurrent requests over 50 adapters in batches of 8 give exactly the tokens each gave alone', async () => {
  const e = engineWith(8)
  try {
    const results = await Promise.all(requests.map((r) => run(e, { ...r, adapter: cidOf(r.adapter) })))
    results.forEach((res, i) => {
      assert.equal(res.done.outputIds, alone[i], `request ${i} (adapter ${requests[i]!.adapter})`)
      assert.equal(res.tokens, alone[i])
    })
    const s = store.stats()
    assert.is(s.hotPinned, 0)
    assert.ok(s.evictions.hot > 0)
    const m = e.metrics()
    assert.ok(m.stepRows / m.steps > 2, `rows per step ${m.stepRows / m.steps}: requests were batched`)
  } finally {
    await e.stop()
  }
})

test('a seeded sampled request gives the same tokens through the engine (batched) as through generate()', async () => {
  const params = { maxNewTokens: 12, temperature: 1.3, topK: 50, topP: 0.95, seed: 4242 }
  const promptIds = [11, 42, 97, 150, 7]
  const direct: number[] = []
  for await (const ev of generate(model, { promptIds, params })) if (ev.type === 'token') direct.push(ev.id)
  const e = engineWith(8)
  try {
    // batched next to other requests, so only the seed decides the draws
    const [seeded] = await Promise.all([
      (async () => {
        const tokens: number[] = []
        for await (const ev of e.generate({ model: model.modelId, adapter: null, promptIds, params }))
          if (ev.type === 'token') tokens.push(ev.id)
        return tokens
      })(),
      run(e, { adapter: cids[0]!, promptIds: [5, 6, 7], max: 6 }),
      run(e, { adapter: null, promptIds: [8, 9], max: 6 })
    ])
    assert.ok(direct.length > 0)
    assert.equal(seeded, direct)
  } finally {
    await e.stop()
  }
})

test('a cancelled request frees its KV row and its slot; the event loop turns between steps', async () => {
  const e = engineWith(8)
  let immediates = 0
  let spinning = true
  const spin = () => {
    immediates += 1
    if (spinning) setImmediate(spin)
  }
  setImmediate(spin)
  try {
    const ac = new AbortController()
    // cancelled at its first token, not after a fixed delay: native decode finished (at eos)
    // within 5 ms
    const cancelled = run(e, {
      adapter: cids[7]!,
      promptIds: [1, 2, 3],
      max: 100,
      signal: ac.signal,
      onToken: () => ac.abort()
    })
    const other = run(e, { adapter: cids[8]!, promptIds: [4, 5, 6], max: 40 })
    const c = await cancelled
    assert.is(c.done.finishReason, 'abort')
    assert.is(store.tierOf(cids[7]!), 'hot')
    const stepsAtCancel = e.metrics().steps
    const o = await other
    assert.is(o.done.finishReason === 'length' || o.done.finishReason === 'stop', true)
    assert.is(store.stats().hotPinned, 0)
    // all rows free again: a full batch can be allocated
    const seqs = Array.from({ length: 8 }, () => model.allocSequence())
    for (const s of seqs) model.freeSequence(s)
    assert.ok(e.metrics().steps > stepsAtCancel - 1)
    // ORT ran the steps off the main thread: the loop kept turning while they ran
    assert.ok(immediates >= e.metrics().steps / 2, `${immediates} turns for ${e.metrics().steps} steps`)
  } finally {
    spinning = false
    await e.stop()
  }
})

test('text prompts and chat messages go through the model tokenizer; token texts add up to the text', async () => {
  const tok = (model as unknown as { tokenizer: Tokenizer }).tokenizer
  const e = engineWith(4)
  try {
    const texts: string[] = []
    let done: Extract<TokenEvent, { type: 'done' }> | undefined
    for await (const ev of e.generate({
      model: model.modelId,
      adapter: cids[4]!,
      prompt: 'The cat sat on',
      params: { maxNewTokens: 12 }
    })) {
      if (ev.type === 'token') texts.push(ev.text)
      else done = ev
    }
    assert.equal(done!.promptIds, tok.encode('The cat sat on'))
    assert.is(done!.text, tok.decode(done!.outputIds))
    assert.ok(done!.text.startsWith(texts.join('')))
    const messages = [{ role: 'user' as const, content: 'hi there' }]
    let chat: Extract<TokenEvent, { type: 'done' }> | undefined
    for await (const ev of e.generate({ model: model.modelId, messages, params: { maxNewTokens: 4 } })) {
      if (ev.type === 'done') chat = ev
    }
    assert.equal(chat!.promptIds, tok.encodeChat(messages, { addGenerationPrompt: true }))
  } finally {
    await e.stop()
  }
})

test.run()
