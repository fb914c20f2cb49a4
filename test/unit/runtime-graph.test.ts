// The built ONNX graph against the plain TypeScript reference forward pass (test/reference): base
// models of each tiny preset (Llama, Llama 3 with llama3 RoPE and padded head_dim 24, Qwen2 with
// attention bias, linear RoPE scaling, bf16 and sharded checkpoints), and PEFT adapters served
// from slot pools against the reference with the adapter merged into the weights (W + scale·B·A)
// for alpha/r, rsLoRA, rank/alpha patterns and layers_to_transform. fp32, max abs error ≤ 1e-4.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadPeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { type MakeModelOptions, makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { weightsHash } from '../../src/runtime/formats/identity.ts'
import { ensureBuiltModel } from '../../src/runtime/model/build.ts'
import { PROJECTIONS } from '../../src/runtime/model/config.ts'
import { type LoadedModel, loadModel, readModelConfig } from '../../src/runtime/model/index.ts'
import { loadReference, mergeAdapter, referenceForward } from '../reference/forward.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-graph-'))
const cacheDir = join(root, 'cache')
const TOL = 1e-4
let n = 0

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.is(a.length, b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

const prompt = (len: number, vocab: number) => Array.from({ length: len }, (_, i) => (i * 37 + 11) % vocab)

async function fixture(opts: Omit<MakeModelOptions, 'out'>): Promise<string> {
  const dir = join(root, `m${n++}-${opts.preset}`)
  await makeModel({ ...opts, out: dir })
  return dir
}

function open(dir: string): Promise<LoadedModel> {
  return loadModel(dir, {
    cacheDir,
    maxBatch: 2,
    maxSeqLen: 200,
    pool: { slots: 3, maxRank: 8, targets: [...PROJECTIONS] }
  })
}

/** Prefill `split` tokens, then decode the rest one by one; every step's logits vs the reference row. */
async function checkAgainst(
  model: LoadedModel,
  want: Float32Array[],
  ids: number[],
  split: number,
  slot: number
) {
  const seq = model.allocSequence()
  try {
    const got = [(await model.step([{ seq, tokens: ids.slice(0, split), slot }]))[0]!]
    for (let t = split; t < ids.length; t++)
      got.push((await model.step([{ seq, tokens: [ids[t]!], slot }]))[0]!)
    for (let i = 0; i < got.length; i++) {
      const d = maxAbsDiff(got[i]!, want[split - 1 + i]!)
      assert.ok(d <= TOL, `position ${split - 1 + i}: max abs diff ${d}`)
    }
  } finally {
    model.freeSequence(seq)
  }
}

const bases: [string, Omit<MakeModelOptions, 'out'>][] = [
  ['tiny (Llama, GQA, tied embeddings)', { preset: 'tiny', seed: 1 }],
  ['llama3-tiny (llama3 RoPE, head_dim 24, untied)', { preset: 'llama3-tiny', seed: 2 }],
  ['qwen2-tiny (attention bias)', { preset: 'qwen2-tiny', seed: 3 }],
  [
    'tiny with linear RoPE scaling',
    { preset: 'tiny', seed: 4, overrides: { rope_scaling: { type: 'linear', factor: 4 } } }
  ],
  ['tiny stored as bf16 in two shards', { preset: 'tiny', seed: 5, dtype: 'BF16', shards: 2 }],
  [
    'Mistral with a sliding window (5) far shorter than the prompt',
    {
      preset: 'tiny',
      seed: 12,
      overrides: { architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 5 }
    }
  ]
]

for (const [name, opts] of bases) {
  test(`graph logits equal the reference forward pass: ${name}`, async () => {
    const dir = await fixture(opts)
    const ref = await loadReference(dir)
    const model = await open(dir)
    try {
      const ids = prompt(14, ref.config.vocabSize)
      const want = referenceForward(ref, ids)
      await checkAgainst(model, want, ids, 9, 0)
      await checkAgainst(model, want, ids, 1, 0)
    } finally {
      await model.dispose()
    }
  })
}

test('llama3 RoPE agrees with the reference far past original_max_position_embeddings', async () => {
  const dir = await fixture({ preset: 'llama3-tiny', seed: 6 })
  const ref = await loadReference(dir)
  const model = await open(dir)
  try {
    const ids = prompt(170, ref.config.vocabSize)
    const want = referenceForward(ref, ids)
    await checkAgainst(model, want, ids, 165, 0)
  } finally {
    await model.dispose()
  }
})

const adapters: [
  string,
  string,
  Parameters<typeof makeAdapter>[0] extends infer O ? Omit<O, 'model' | 'out'> : never
][] = [
  ['rank 8, alpha 16 on q,v', 'tiny', { rank: 8, alpha: 16, targets: ['q_proj', 'v_proj'], seed: 1 }],
  [
    'rsLoRA rank 4 on all seven projections',
    'qwen2-tiny',
    { rank: 4, alpha: 8, rslora: true, targets: [...PROJECTIONS], seed: 2 }
  ],
  [
    'rank_pattern / alpha_pattern / layers_to_transform',
    'llama3-tiny',
    {
      rank: 4,
      alpha: 4,
      targets: ['q_proj', 'k_proj', 'o_proj', 'down_proj'],
      rankPattern: { o_proj: 8 },
      alphaPattern: { k_proj: 12 },
      layersToTransform: [1],
      seed: 3
    }
  ]
]

for (const [name, preset, aopts] of adapters) {
  test(`an adapter in a slot equals the reference with it merged: ${name} (${preset})`, async () => {
    const dir = await fixture({ preset: preset as MakeModelOptions['preset'], seed: 7 })
    const adir = join(root, `a${n++}`)
    await makeAdapter({ ...aopts, model: dir, out: adir })
    const ref = await loadReference(dir)
    const adapter = await loadPeftAdapter(adir, ref.config)
    const model = await open(dir)
    try {
      model.pools.write(2, adapter)
      const ids = prompt(12, ref.config.vocabSize)
      const merged = referenceForward(
        { config: ref.config, weights: mergeAdapter(ref.weights, adapter) },
        ids
      )
      await checkAgainst(model, merged, ids, 8, 2)
      // the adapter must matter, or the comparison proves nothing; and slot 0 stays the base model
      const base = referenceForward(ref, ids)
      assert.ok(maxAbsDiff(base.at(-1)!, merged.at(-1)!) > 1e-3, 'adapter changes the logits')
      await checkAgainst(model, base, ids, 8, 0)
      // clearing the slot gives the base model back
      model.pools.clear(2)
      await checkAgainst(model, base, ids, 12, 2)
    } finally {
      await model.dispose()
    }
  })
}

test('the built graph is cached by weights hash: a second load reuses it, other weights rebuild', async () => {
  const dir = await fixture({ preset: 'tiny', seed: 8 })
  const first = await open(dir)
  const hash = first.weightsHash
  await first.dispose()
  const second = await open(dir)
  try {
    assert.ok(second.cachedGraph)
    assert.is(second.buildMs, 0)
    assert.is(second.weightsHash, hash)
    assert.is(hash, await weightsHash(dir), 'the weightsHash of INTERFACES.md')
  } finally {
    await second.dispose()
  }
  const other = await open(await fixture({ preset: 'tiny', seed: 9 }))
  try {
    assert.not.ok(other.cachedGraph)
    assert.is.not(other.weightsHash, hash)
    assert.ok(other.tokenizer, 'tokenizer loaded with the model')
    assert.is(other.modelId, 'openlora-fixtures/tiny-seed9')
  } finally {
    await other.dispose()
  }
})

test('two loads building the same graph at once both get a working model', async () => {
  const dir = await fixture({ preset: 'tiny', seed: 11 })
  const [a, b] = await Promise.all([open(dir), open(dir)])
  try {
    const sa = a.allocSequence()
    const sb = b.allocSequence()
    const [la] = await a.step([{ seq: sa, tokens: [1, 2, 3], slot: 0 }])
    const [lb] = await b.step([{ seq: sb, tokens: [1, 2, 3], slot: 0 }])
    assert.equal(Array.from(la!), Array.from(lb!))
    assert.equal(
      readdirSync(cacheDir).filter((f) => f.includes('.tmp-')),
      [],
      'no temp dir left'
    )
  } finally {
    await a.dispose()
    await b.dispose()
  }
})

test('a checkpoint whose tensors do not fit its config fails the build, naming the tensor', async () => {
  const dir = await fixture({ preset: 'tiny', seed: 10 })
  const cfgPath = join(dir, 'config.json')
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'))
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, intermediate_size: 96 }))
  try {
    await open(dir)
    assert.unreachable('the build should fail')
  } catch (err) {
    assert.is((err as Error).name, 'ModelWeightsError')
    assert.match(
      (err as Error).message,
      /model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[128, 64\]; the config needs \[96, 64\]/
    )
  }
  assert.equal(
    readdirSync(cacheDir).filter((f) => f.includes('.tmp-')),
    [],
    'no partial build left behind'
  )
})

test.after(() => rmSync(root, { recursive: true, force: true }))
test('a config that changes the graph but not the weights gets its own build (sliding window)', async () => {
  const plain = await fixture({ preset: 'tiny', seed: 13 })
  const windowed = await fixture({
    preset: 'tiny',
    seed: 13,
    overrides: { architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 5 }
  })
  const cache = join(root, 'cache-window')
  const a = await ensureBuiltModel(plain, await readModelConfig(plain), { cacheDir: cache, targets: [] })
  const b = await ensureBuiltModel(windowed, await readModelConfig(windowed), {
    cacheDir: cache,
    targets: []
  })
  assert.is(a.weightsHash, b.weightsHash)
  assert.is(b.cached, false, 'the windowed graph must not reuse the full-attention build')
  assert.is.not(a.modelPath, b.modelPath)
})

test.run()
