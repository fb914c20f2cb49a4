// Sampling and single-request generation: greedy equals the reference forward pass's argmax chain,
// seeded sampling repeats, top-k / top-p never leave their candidate set, stop ids / stop strings /
// max tokens / abort end a generation with the right reason and free its sequence, and the
// `openlora generate` CLI prints the same ids and writes the prompt logits it computed.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadPeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { generate, type TokenEvent } from '../../src/runtime/generate.ts'
import { type LoadedModel, loadModel } from '../../src/runtime/model/index.ts'
import { argmax, checkSamplingParams, createRng, sample } from '../../src/runtime/sampling.ts'
import { loadReference, referenceForward } from '../reference/forward.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-generate-'))
const modelDir = join(root, 'model')
const cacheDir = join(root, 'cache')
let model: LoadedModel
const PROMPT = [1, 40, 41, 42, 43, 44]

async function run(gen: AsyncIterable<TokenEvent>) {
  const tokens: Extract<TokenEvent, { type: 'token' }>[] = []
  let done: Extract<TokenEvent, { type: 'done' }> | undefined
  for await (const ev of gen) {
    if (ev.type === 'token') tokens.push(ev)
    else done = ev
  }
  assert.ok(done, 'a done event ends every generation')
  return { tokens, done: done! }
}

test.before(async () => {
  await makeModel({ out: modelDir, preset: 'tiny', seed: 21 })
  model = await loadModel(modelDir, {
    cacheDir,
    maxBatch: 2,
    maxSeqLen: 64,
    pool: { slots: 2, maxRank: 4, targets: [] }
  })
})

test.after(async () => {
  await model?.dispose()
  rmSync(root, { recursive: true, force: true })
})

test('sample: greedy is argmax; top-k 1 is greedy; a seed repeats its draws', () => {
  const logits = Float32Array.of(0.1, 2, -1, 1.9)
  assert.is(sample(logits, {}, Math.random), 1)
  assert.is(sample(logits, { temperature: 0 }, Math.random), 1)
  assert.is(sample(logits, { temperature: 5, topK: 1 }, Math.random), 1)
  const draw = (seed: number) => {
    const rng = createRng(seed)
    return Array.from({ length: 50 }, () => sample(logits, { temperature: 1.5 }, rng))
  }
  assert.equal(draw(7), draw(7))
  assert.not.equal(draw(7), draw(8))
})

test('sample: temperature 1 follows softmax; top-k and top-p stay inside their sets', () => {
  const rng = createRng(1)
  // p = [1/4, 3/4]
  const two = Float32Array.of(0, Math.log(3))
  let ones = 0
  for (let i = 0; i < 4000; i++) ones += sample(two, { temperature: 1 }, rng)
  assert.ok(Math.abs(ones / 4000 - 0.75) < 0.03, `frequency ${ones / 4000}`)
  // p ∝ [5, 3, 2]: top-p 0.6 keeps {0, 1}; top-k 2 keeps {0, 1}
  const three = Float32Array.of(Math.log(5), Math.log(3), Math.log(2))
  const seen = new Set<number>()
  for (let i = 0; i < 2000; i++) {
    seen.add(sample(three, { temperature: 1, topP: 0.6 }, rng))
    seen.add(sample(three, { temperature: 1, topK: 2 }, rng))
  }
  assert.equal([...seen].sort(), [0, 1])
  assert.throws(
    () => checkSamplingParams({ topP: 0 }),
    /topP: must be a number in \(0, 1\] \(1 = off\) \(got 0\)/
  )
  assert.throws(() => checkSamplingParams({ temperature: -1 }), /temperature/)
  assert.throws(() => checkSamplingParams({ topK: 1.5 }), /topK/)
})

/** The plain definition: sort everything, cut top-k, cut the top-p prefix, draw. */
function naiveSample(
  logits: Float32Array,
  p: { temperature: number; topK?: number; topP?: number },
  rng: () => number
) {
  const ids = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b)
  const kept = ids.slice(0, p.topK && p.topK > 0 ? p.topK : ids.length)
  const max = logits[kept[0]!]!
  const w = kept.map((i) => Math.exp((logits[i]! - max) / p.temperature))
  const total = w.reduce((a, b) => a + b, 0)
  let n = kept.length
  if (p.topP !== undefined && p.topP < 1) {
    let acc = 0
    for (let j = 0; j < kept.length; j++) {
      acc += w[j]! / total
      if (acc >= p.topP) {
        n = j + 1
        break
      }
    }
  }
  // the draw walks the chosen tokens in id order
  const chosen = kept.slice(0, n).sort((a, b) => a - b)
  const cw = chosen.map((i) => Math.exp((logits[i]! - max) / p.temperature))
  const sum = cw.reduce((a, b) => a + b, 0)
  let r = rng() * sum
  for (let j = 0; j < chosen.length; j++) {
    r -= cw[j]!
    if (r < 0) return chosen[j]!
  }
  return chosen.at(-1)!
}

test('sample draws what the plain sort-everything definition draws (top-k, top-p, ties)', () => {
  const gen = createRng(3)
  for (const V of [7, 1000, 49152]) {
    // coarse values make many ties; a spread of scales makes peaked and flat distributions
    const logits = Float32Array.from({ length: V }, () => Math.round(gen() * 40) / 4)
    for (const params of [
      { temperature: 1 },
      { temperature: 0.5, topK: 5 },
      { temperature: 1.3, topP: 0.8 },
      { temperature: 0.8, topK: 50, topP: 0.9 },
      { temperature: 2, topK: V + 3, topP: 0.999 }
    ]) {
      const a = createRng(11)
      const b = createRng(11)
      for (let i = 0; i < 60; i++) {
        assert.is(
          sample(logits, params, a),
          naiveSample(logits, params, b),
          `V ${V} ${JSON.stringify(params)} draw ${i}`
        )
      }
    }
  }
})

test('greedy generation equals the reference forward pass token by token', async () => {
  const ref = await loadReference(modelDir)
  const ids = [...PROMPT]
  for (let i = 0; i < 8; i++) ids.push(argmax(referenceForward(ref, ids).at(-1)!))
  const { tokens, done } = await run(
    generate(model, {
      promptIds: PROMPT,
      params: { maxNewTokens: 8 },
      decode: (x) => model.tokenizer!.decode(x)
    })
  )
  assert.equal(done.outputIds, ids.slice(PROMPT.length))
  assert.equal(
    tokens.map((t) => t.id),
    done.outputIds
  )
  assert.is(done.finishReason, 'length')
  assert.equal(done.usage, { promptTokens: PROMPT.length, outputTokens: 8 })
  assert.is(tokens.map((t) => t.text).join(''), done.text)
  assert.is(done.text, model.tokenizer!.decode(done.outputIds))
  // chunked prefill gives the same tokens
  const chunked = await run(
    generate(model, { promptIds: PROMPT, params: { maxNewTokens: 8 }, prefillChunk: 4 })
  )
  assert.equal(chunked.done.outputIds, done.outputIds)
})

test('seeded sampling repeats; stop ids, stop strings and abort end with their reason', async () => {
  const params = { maxNewTokens: 12, temperature: 1.2, topK: 50, topP: 0.95, seed: 99 }
  const a = await run(generate(model, { promptIds: PROMPT, params }))
  const b = await run(generate(model, { promptIds: PROMPT, params }))
  assert.equal(a.done.outputIds, b.done.outputIds)

  const greedy = await run(generate(model, { promptIds: PROMPT, params: { maxNewTokens: 10 } }))
  const stopId = greedy.done.outputIds[3]!
  const first = greedy.done.outputIds.indexOf(stopId)
  const stopped = await run(
    generate(model, { promptIds: PROMPT, params: { maxNewTokens: 10, stopTokenIds: [stopId] } })
  )
  assert.is(stopped.done.finishReason, 'stop')
  assert.equal(stopped.done.outputIds, greedy.done.outputIds.slice(0, first))

  const decode = (x: number[]) => model.tokenizer!.decode(x)
  const full = decode(greedy.done.outputIds)
  const stopString = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2)
  const cut = await run(
    generate(model, { promptIds: PROMPT, params: { maxNewTokens: 10, stopStrings: [stopString] }, decode })
  )
  assert.is(cut.done.finishReason, 'stop')
  assert.is(cut.done.text, full.slice(0, full.indexOf(stopString)))
  assert.not.ok(
    cut.tokens
      .map((t) => t.text)
      .join('')
      .includes(stopString)
  )

  const ac = new AbortController()
  const events: TokenEvent[] = []
  for await (const ev of generate(model, {
    promptIds: PROMPT,
    params: { maxNewTokens: 30 },
    signal: ac.signal
  })) {
    events.push(ev)
    if (ev.type === 'token' && ev.index === 1) ac.abort()
  }
  const done = events.at(-1)!
  assert.is(done.type, 'done')
  assert.is(done.type === 'done' && done.finishReason, 'abort')
  assert.is(done.type === 'done' && done.outputIds.length, 2)
  // every generation above freed its KV row
  const rows = [model.allocSequence(), model.allocSequence()]
  for (const r of rows) model.freeSequence(r)
})

test('generation stops with length when the sequence is full; an over-long prompt is refused', async () => {
  // model holds 64 positions: a 60-token prompt leaves room to feed back 4 outputs, so 5 come out
  const prompt = Array.from({ length: 60 }, (_, i) => (i * 7 + 3) % 512)
  const { done } = await run(generate(model, { promptIds: prompt, params: { maxNewTokens: 20 } }))
  assert.is(done.finishReason, 'length')
  assert.is(done.outputIds.length, 5)
  try {
    await run(generate(model, { promptIds: new Array(65).fill(5), params: { maxNewTokens: 1 } }))
    assert.unreachable('an over-long prompt must be refused')
  } catch (err) {
    assert.match((err as Error).message, /65 tokens; this model holds 64 positions/)
  }
})

test('openlora generate --json prints the greedy ids; --logits writes the prompt logits', async () => {
  const greedy = await run(generate(model, { promptIds: PROMPT, params: { maxNewTokens: 5 } }))
  const seq = model.allocSequence()
  const [want] = await model.step([{ seq, tokens: PROMPT, slot: 0 }])
  model.freeSequence(seq)
  const logitsFile = join(root, 'logits.bin')
  const res = spawnSync(
    process.execPath,
    [
      'src/node/cli/main.ts',
      'generate',
      '--model',
      modelDir,
      '--prompt-ids',
      PROMPT.join(','),
      '--max-tokens',
      '5',
      '--json',
      '--logits',
      logitsFile,
      '--cache-dir',
      cacheDir
    ],
    { encoding: 'utf8', env: { ...process.env, OPENLORA_LOG_LEVEL: 'silent' } }
  )
  assert.is(res.status, 0, res.stderr)
  const out = JSON.parse(res.stdout.trim().split('\n').at(-1)!)
  assert.equal(out.outputIds, greedy.done.outputIds)
  assert.is(out.weightsHash, model.weightsHash)
  const bytes = readFileSync(logitsFile)
  const got = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
  assert.is(got.length, model.config.vocabSize)
  let d = 0
  for (let i = 0; i < got.length; i++) d = Math.max(d, Math.abs(got[i]! - want![i]!))
  assert.ok(d <= 1e-5, `logits differ by ${d}`)

  const bad = spawnSync(process.execPath, ['src/node/cli/main.ts', 'generate', '--model', modelDir], {
    encoding: 'utf8'
  })
  assert.is(bad.status, 2)
  assert.match(bad.stderr, /exactly one of --prompt and --prompt-ids/)
})

test('openlora generate --adapter --chat runs the chat prompt through the adapter', async () => {
  const adapterDir = join(root, 'adapter')
  await makeAdapter({
    model: modelDir,
    out: adapterDir,
    rank: 4,
    targets: ['q_proj', 'v_proj', 'down_proj'],
    seed: 5
  })
  const adapter = await loadPeftAdapter(adapterDir, model.config)
  const promptIds = model.tokenizer!.encodeChat([{ role: 'user', content: 'hello there' }], {
    addGenerationPrompt: true
  })
  const withAdapter = await loadModel(modelDir, {
    cacheDir,
    maxBatch: 1,
    maxSeqLen: 128,
    pool: { slots: 2, maxRank: 4, targets: adapter.config.targets }
  })
  let want: number[]
  try {
    withAdapter.pools.write(1, adapter)
    want = (await run(generate(withAdapter, { promptIds, params: { maxNewTokens: 6 }, slot: 1 }))).done
      .outputIds
  } finally {
    await withAdapter.dispose()
  }
  const base = (await run(generate(model, { promptIds, params: { maxNewTokens: 6 } }))).done.outputIds
  assert.not.equal(want, base, 'the adapter changes the greedy tokens')
  const res = spawnSync(
    process.execPath,
    [
      'src/node/cli/main.ts',
      'generate',
      '--model',
      modelDir,
      '--adapter',
      adapterDir,
      '--prompt',
      'hello there',
      '--chat',
      '--max-tokens',
      '6',
      '--json',
      '--cache-dir',
      cacheDir
    ],
    { encoding: 'utf8', env: { ...process.env, OPENLORA_LOG_LEVEL: 'silent' } }
  )
  assert.is(res.status, 0, res.stderr)
  const out = JSON.parse(res.stdout.trim().split('\n').at(-1)!)
  assert.equal(out.promptIds, promptIds)
  assert.equal(out.outputIds, want)
  assert.is(out.adapter, adapter.cid)
})

test.run()
