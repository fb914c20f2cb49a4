// Every family llama.cpp has an architecture for: our GGUF export (exportModelToGguf, and the
// LoRA export of both PEFT adapters of each fixture) loads in llama.cpp (node-llama-cpp's prebuilt
// CPU library) and gives our runtime's logits at every position of a prompt and a greedy
// continuation. The checkpoints llama.cpp would compute differently are refused naming the key,
// and a variant without that key (made here from the fixture) is compared instead, so every
// architecture the export writes is run by llama.cpp at least once.

import { readFileSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, type Token } from 'node-llama-cpp'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadPeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { exportModelToGguf } from '../../src/runtime/export/gguf-families.ts'
import { exportLoraToGguf } from '../../src/runtime/export/gguf-lora.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { makeFamilyModel } from '../../src/runtime/fixtures/make-family-model.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { loadCheckpointWeights, writeSafetensorsStreaming } from '../../src/runtime/formats/safetensors.ts'
import { PROJECTIONS } from '../../src/runtime/model/config.ts'
import { type LoadedModel, loadModel } from '../../src/runtime/model/index.ts'

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'families')
// fp32 in both engines: two summation orders agree to ~2e-6 (llamacpp.test.ts uses the same bound)
const TOL = 1e-4
// llama.cpp's CPU GELU (and GeGLU) looks the activation up in a float16 table: inputs are rounded
// to 11 significant bits, which moves these tiny models' logits by 1e-3..3e-3 (seen: gemma
// 1.7e-3, falcon 2.4e-3, whose exact-erf GELU llama.cpp computes as tanh on top)
const GELU_TOL = 1e-2
const STEPS = 6

let root: string
let llama: Llama
const worst = new Map<string, number>()

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'llamacpp-families-'))
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error })
})

test.after(async () => {
  // the measured agreement, for docs/RUNTIME-MODEL.md's table (one line, not an assertion)
  process.stdout.write(
    `max |logit diff| per case: ${JSON.stringify(Object.fromEntries([...worst].map(([k, v]) => [k, Number(v.toExponential(2))])))}\n`
  )
  await llama?.dispose()
  await rm(root, { recursive: true, force: true })
})

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>

async function copyTokenizer(from: string, to: string): Promise<void> {
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'])
    await copyFile(join(from, f), join(to, f))
}

/** The fixture with config changes and some tensors dropped (same shapes, so the same weights). */
async function derive(
  fixture: string,
  patch: Record<string, unknown>,
  drop: (name: string) => boolean
): Promise<string> {
  const from = join(FIXTURES, fixture)
  const out = join(root, `${fixture}-variant`)
  await mkdir(out, { recursive: true })
  const weights = await loadCheckpointWeights(from)
  const keep = [...weights.keys()].filter((n) => !drop(n))
  await writeSafetensorsStreaming(
    join(out, 'model.safetensors'),
    keep.map((name) => ({ name, shape: weights.get(name)!.shape })),
    (name) => weights.get(name)!.data,
    { format: 'pt' }
  )
  await writeFile(
    join(out, 'config.json'),
    JSON.stringify({ ...readJson(join(from, 'config.json')), ...patch })
  )
  await copyTokenizer(from, out)
  return out
}

/** A random checkpoint of the fixture's family with other shapes, and the fixture's tokenizer. */
async function reshape(fixture: string, patch: Record<string, unknown>): Promise<string> {
  const from = join(FIXTURES, fixture)
  const out = join(root, `${fixture}-reshaped`)
  await makeFamilyModel({ out, config: { ...readJson(join(from, 'config.json')), ...patch }, seed: 3 })
  await copyTokenizer(from, out)
  return out
}

function argmax(v: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i
  return best
}

/** llama.cpp's logits after the prompt and after each of its greedy tokens. */
async function theirs(model: LlamaModel, vocab: number, prompt: number[], steps: number, lora?: string) {
  const ctx = await model.createContext({
    contextSize: 64,
    threads: 1,
    sequences: 1,
    // F32 KV cache and no flash attention: llama.cpp's F16 paths would round what we keep in fp32
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
    ...(lora ? { lora: { adapters: [{ filePath: lora }] } } : {})
  })
  try {
    const seq = ctx.getSequence()
    const want = { generateNext: { token: true, logits: true, options: { temperature: 0 } } } as const
    const logits: Float32Array[] = []
    const tokens: number[] = []
    let input: Parameters<typeof seq.controlledEvaluate>[0] = [
      ...(prompt.slice(0, -1) as Token[]),
      [prompt.at(-1) as Token, want]
    ]
    for (let i = 0; i < steps; i++) {
      const next = (await seq.controlledEvaluate(input)).at(-1)!.next
      const row = new Float32Array(vocab)
      for (const [t, v] of next.logits!) row[t] = v
      logits.push(row)
      tokens.push(next.token!)
      input = [[next.token! as Token, want]]
    }
    return { logits, tokens }
  } finally {
    await ctx.dispose()
  }
}

/** Our logits over the same tokens (teacher-forced on llama.cpp's picks). */
async function ours(model: LoadedModel, prompt: number[], tokens: number[], slot: number) {
  const seq = model.allocSequence()
  try {
    const out: Float32Array[] = []
    let [logits] = await model.step([{ seq, tokens: prompt, slot }])
    for (let i = 0; i < tokens.length; i++) {
      out.push(Float32Array.from(logits!))
      if (i + 1 < tokens.length) [logits] = await model.step([{ seq, tokens: [tokens[i]!], slot }])
    }
    return out
  } finally {
    model.freeSequence(seq)
  }
}

interface Case {
  name: string
  dir: () => Promise<string>
  /** the fixture's two PEFT adapters also go through the LoRA export */
  adapters: boolean
}

const fixture = (name: string, adapters = true): Case => ({
  name,
  dir: async () => join(FIXTURES, name),
  adapters
})
const CASES: Case[] = [
  // Qwen2 (q/k/v biases) from the runtime's own preset, with two adapters made like PEFT's
  {
    name: 'qwen2',
    dir: async () => {
      const m = await makeModel({ out: join(root, 'qwen2'), preset: 'qwen2-tiny', seed: 4 })
      const attn = ['q_proj', 'k_proj', 'v_proj', 'o_proj']
      await makeAdapter({ model: m.dir, out: join(m.dir, 'adapter-attn'), rank: 4, targets: attn, seed: 1 })
      await makeAdapter({
        model: m.dir,
        out: join(m.dir, 'adapter-all'),
        rank: 8,
        rslora: true,
        targets: [...attn, 'gate_proj', 'up_proj', 'down_proj'],
        seed: 2
      })
      return m.dir
    },
    adapters: true
  },
  fixture('qwen3'),
  fixture('gemma'),
  fixture('gemma3_text'),
  fixture('phi3'),
  // phi3 whole: llama.cpp turns Phi's window off, so the full prompt runs on a windowless copy
  {
    name: 'phi3 (no window)',
    dir: () => derive('phi3', { sliding_window: null }, () => false),
    adapters: false
  },
  fixture('falcon'),
  fixture('bloom'),
  fixture('glm4'),
  // llama.cpp's gemma2 always ties the output head: the fixture's weights with lm_head dropped
  {
    name: 'gemma2 (tied)',
    dir: () => derive('gemma2', { tie_word_embeddings: true }, (n) => n === 'lm_head.weight'),
    adapters: false
  },
  // llama.cpp's falcon has no Linear biases: the 40B layout of the fixture without them
  {
    name: 'falcon_new (no Linear biases)',
    dir: () =>
      derive('falcon_new', { bias: false }, (n) =>
        /(query_key_value|dense|dense_h_to_4h|dense_4h_to_h)\.bias$/.test(n)
      ),
    adapters: false
  },
  // llama.cpp's chatglm and phi3 need heads × head_dim = hidden_size
  { name: 'glm (head_dim 16)', dir: () => reshape('glm', { head_dim: 16 }), adapters: false },
  {
    name: 'phi3_partial (head_dim 16)',
    dir: () => reshape('phi3_partial', { head_dim: 16 }),
    adapters: false
  }
]

for (const c of CASES) {
  test(`llama.cpp runs our GGUF export of ${c.name} with our logits`, async () => {
    const dir = await c.dir()
    const out = join(root, `${c.name.replace(/\W+/g, '_')}.gguf`)
    const r = await exportModelToGguf(dir, out)
    const cfg = r.config
    const tol = cfg.activation === 'silu' ? TOL : GELU_TOL
    // where llama.cpp has no window (phi3's), compare only sequences that fit in ours
    const noWindow = r.warnings.some((w) => w.includes('whole context'))
    const steps = noWindow ? Math.min(STEPS, cfg.slidingWindow! - 2) : STEPS
    const prompt = (readJson(join(FIXTURES, 'qwen3', 'goldens.json')).prompt_ids as number[]).slice(
      0,
      noWindow ? cfg.slidingWindow! - steps + 1 : undefined
    )
    assert.ok(prompt.length >= 1)
    const mine = await loadModel(dir, {
      cacheDir: join(root, 'cache'),
      maxBatch: 1,
      maxSeqLen: 64,
      pool: { slots: 3, maxRank: 8, targets: [...PROJECTIONS] }
    })
    const model = await llama.loadModel({ modelPath: out })
    try {
      const runs: { slot: number; lora?: string; label: string }[] = [{ slot: 0, label: 'base' }]
      if (c.adapters) {
        for (const [i, name] of ['attn', 'all'].entries()) {
          const adapter = await loadPeftAdapter(join(dir, `adapter-${name}`), cfg, { checkBaseModel: false })
          const lora = join(root, `${c.name}-${name}.gguf`)
          await exportLoraToGguf(adapter, cfg, lora)
          mine.pools.write(i + 1, adapter)
          runs.push({ slot: i + 1, lora, label: `adapter-${name}` })
        }
      }
      const baseLogits: Float32Array[] = []
      for (const run of runs) {
        const ref = await theirs(model, cfg.vocabSize, prompt, steps, run.lora)
        const got = await ours(mine, prompt, ref.tokens, run.slot)
        for (let i = 0; i < steps; i++) {
          let d = 0
          for (let v = 0; v < cfg.vocabSize; v++) d = Math.max(d, Math.abs(got[i]![v]! - ref.logits[i]![v]!))
          assert.ok(d <= tol, `${run.label} step ${i}: logits differ by ${d} (bound ${tol})`)
          worst.set(c.name, Math.max(worst.get(c.name) ?? 0, d))
          const sorted = [...got[i]!].sort((a, b) => b - a)
          if (sorted[0]! - sorted[1]! > 2 * tol)
            assert.is(ref.tokens[i], argmax(got[i]!), `${run.label} step ${i}: greedy pick`)
        }
        if (run.slot === 0) baseLogits.push(got[0]!)
        else {
          let d = 0
          for (let v = 0; v < cfg.vocabSize; v++) d = Math.max(d, Math.abs(got[0]![v]! - baseLogits[0]![v]!))
          assert.ok(d > 0.05, `${run.label} changes the logits by only ${d}: the comparison proves nothing`)
        }
      }
    } finally {
      await model.dispose()
      await mine.dispose()
    }
  })
}

const REFUSED: [fixture: string, field: string, reason: RegExp][] = [
  ['gemma2', 'tie_word_embeddings', /token_embd as the output head/],
  ['falcon_new', 'bias', /no Linear biases/],
  ['falcon_rw', 'alibi', /falcon architecture has no ALiBi/],
  ['phi3_longrope', 'rope_scaling', /rope_scaling longrope is not exported/],
  ['glm', 'head_dim', /num_attention_heads × head_dim \(128\) = hidden_size \(64\)/],
  ['phi3_partial', 'head_dim', /num_attention_heads × head_dim/]
]
for (const [name, field, reason] of REFUSED) {
  test(`the GGUF export refuses ${name}, naming ${field} and why llama.cpp cannot compute it`, async () => {
    const err = await exportModelToGguf(join(FIXTURES, name), join(root, `${name}.gguf`)).then(
      () => null,
      (e: Error & { data?: { field?: string } }) => e
    )
    assert.is(err?.name, 'NotSupportedError')
    assert.match(err!.message, reason)
    assert.is(err!.data?.field, field)
  })
}

test.run()
