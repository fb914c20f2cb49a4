// Model-runtime benchmark (issue 3's model half): graph build time (cold) and load time (cached),
// prefill and decode throughput of LoadedModel.step() at batch 1 and batch 8 on a random
// checkpoint of SmolLM2-135M's shape, for a graph without LoRA ops ("base") against LoRA graphs
// where every row runs a different adapter: rank 8 on q_proj,v_proj (issue 4's main case) and
// rank 16 on all seven projections (a stress case: at batch 8 the rows' adapters add ~29% to the
// bytes a step reads), plus the q/v graph with every row on slot 0 (no adapter). Batch-1 decode is
// also put against the memory-bandwidth bound (weight bytes read per token ÷ a copy bandwidth
// measured in the same run, interleaved with the decode rounds because this machine's bandwidth
// drifts).
//
//   npm run bench:model -- [--quick] [--json] [--preset smollm2-135m] [--threads N]
import { existsSync, mkdirSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeModel, type Preset } from '../../src/runtime/fixtures/make-model.ts'
import { projectionShape } from '../../src/runtime/model/config.ts'
import { type AdapterWeights, type LoadedModel, loadModel } from '../../src/runtime/model/index.ts'
import { benchArgs } from './args.ts'

const values = benchArgs('npm run bench:model -- [--quick] [--json] [--preset smollm2-135m] [--threads N]', {
  quick: { type: 'boolean' },
  json: { type: 'boolean' },
  preset: { type: 'string', default: 'smollm2-135m' },
  threads: { type: 'string' }
})
const quick = values.quick === true
const preset = values.preset as Preset
const threads = values.threads ? Number(values.threads) : undefined
const ROUNDS = quick ? 3 : 8
const DECODE_TOKENS = quick ? 8 : 24
const PROMPT = 32

const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}
const say = (s: string) => {
  if (!values.json) console.log(s)
}

const root = join(tmpdir(), 'openlora-bench-model')
const modelDir = join(root, `${preset}-seed0`)
if (!existsSync(join(modelDir, 'config.json'))) {
  say(`writing a random ${preset} checkpoint to ${modelDir}`)
  await makeModel({ out: modelDir, preset, seed: 0 })
}
const cacheDir = join(root, `cache-${process.pid}`)
mkdirSync(cacheDir, { recursive: true })
const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
const QV = ['q_proj', 'v_proj']
const opts = {
  cacheDir,
  maxBatch: 8,
  // a serving-sized cache: per-step costs that grow with capacity (not length) would show here
  maxSeqLen: 1024,
  intraOpThreads: threads,
  pool: { slots: 9, maxRank: 8, targets: QV }
}
let t0 = performance.now()
let model = await loadModel(modelDir, opts)
const coldLoadMs = performance.now() - t0
const buildMs = model.buildMs
await model.dispose()
t0 = performance.now()
model = await loadModel(modelDir, opts)
const cachedLoadMs = performance.now() - t0
if (!model.cachedGraph) throw new Error('second load did not use the cached graph')
const base = await loadModel(modelDir, { ...opts, pool: { slots: 1, maxRank: 1, targets: [] } })
const all16 = await loadModel(modelDir, { ...opts, pool: { slots: 9, maxRank: 16, targets: ALL } })

function adapter(m: LoadedModel, rank: number, targets: string[]): AdapterWeights {
  const layers = new Map()
  for (let l = 0; l < m.config.numLayers; l++) {
    const mods = new Map()
    for (const t of targets) {
      const [inn, out] = projectionShape(m.config, t)
      mods.set(t, {
        A: Float32Array.from({ length: rank * inn }, () => Math.random() * 0.02 - 0.01),
        B: Float32Array.from({ length: out * rank }, () => Math.random() * 0.02 - 0.01),
        r: rank,
        scale: 2
      })
    }
    layers.set(l, mods)
  }
  return { layers }
}
for (let slot = 1; slot <= 8; slot++) {
  model.pools.write(slot, adapter(model, 8, QV))
  all16.pools.write(slot, adapter(all16, 16, ALL))
}

// weight bytes one decode step reads: every projection, the lm_head (tied = the embedding) and norms
const c = model.config
const perLayer =
  c.hiddenSize * (c.numHeads + 2 * c.numKvHeads) * c.headDim +
  c.numHeads * c.headDim * c.hiddenSize +
  3 * c.hiddenSize * c.intermediateSize
const weightBytes = 4 * (c.numLayers * perLayer + c.vocabSize * c.hiddenSize)
const copyA = new Float32Array(weightBytes / 8)
const copyB = new Float32Array(weightBytes / 8)
function copyGBs(): number {
  const t = performance.now()
  copyB.set(copyA)
  const s = (performance.now() - t) / 1000
  return (2 * copyA.byteLength) / s / 1e9
}

interface Round {
  prefillTokPerSec: number
  decodeTokPerSec: number
  stepMs: number
}
async function round(m: LoadedModel, batch: number, lora: boolean): Promise<Round> {
  const seqs = Array.from({ length: batch }, () => m.allocSequence())
  // with lora, row i uses adapter slot i + 1: every row a different adapter
  const slotOf = (i: number) => (lora ? i + 1 : 0)
  const prompt = Array.from({ length: PROMPT }, (_, i) => 100 + ((i * 7) % 900))
  let t = performance.now()
  // all prompts in one step, as the engine sends requests that start together (one padded pass)
  await m.step(seqs.map((s, i) => ({ seq: s, tokens: prompt, slot: slotOf(i) })))
  const prefillS = (performance.now() - t) / 1000
  t = performance.now()
  for (let k = 0; k < DECODE_TOKENS; k++) {
    await m.step(seqs.map((s, i) => ({ seq: s, tokens: [200 + k], slot: slotOf(i) })))
  }
  const decodeMs = performance.now() - t
  for (const s of seqs) m.freeSequence(s)
  return {
    prefillTokPerSec: (batch * PROMPT) / prefillS,
    decodeTokPerSec: (batch * DECODE_TOKENS) / (decodeMs / 1000),
    stepMs: decodeMs / DECODE_TOKENS
  }
}

// warm-up: first runs allocate ORT's arena and page weights in
await round(model, 8, true)
await round(all16, 8, true)
await round(base, 8, false)
const cases = [
  ['b1_base', base, 1, false],
  ['b1_lora', model, 1, true],
  ['b8_base', base, 8, false],
  ['b8_lora', model, 8, true],
  ['b8_loraGraphNoAdapter', model, 8, false],
  ['b1_loraAll16', all16, 1, true],
  ['b8_loraAll16', all16, 8, true]
] as const
const samples: Record<string, Round[]> = {}
const copies: number[] = []
for (let r = 0; r < ROUNDS; r++) {
  copies.push(copyGBs())
  for (const [name, m, b, lora] of cases) (samples[name] ??= []).push(await round(m, b, lora))
}
await model.dispose()
await base.dispose()
await all16.dispose()
rmSync(cacheDir, { recursive: true, force: true })

const results: Record<string, number> = {
  buildMs,
  coldLoadMs: Math.round(coldLoadMs),
  cachedLoadMs: Math.round(cachedLoadMs),
  weightBytesPerToken: weightBytes,
  copyGBps: Number(med(copies).toFixed(2)),
  samples: ROUNDS
}
for (const [name] of cases) {
  const s = samples[name]!
  results[`${name}_decodeTokensPerSec`] = Number(med(s.map((x) => x.decodeTokPerSec)).toFixed(2))
  results[`${name}_stepMsP50`] = Number(med(s.map((x) => x.stepMs)).toFixed(2))
  results[`${name}_prefillTokensPerSec`] = Number(med(s.map((x) => x.prefillTokPerSec)).toFixed(1))
}
// a decode step must read every weight once; at the copy bandwidth that takes weightBytes / (copy/2)
// (a copy moves each byte twice: read + write, and its GB/s above counts both)
const boundTokPerSec = (results.copyGBps! * 1e9) / 2 / weightBytes
results.b1_bandwidthBoundTokensPerSec = Number(boundTokPerSec.toFixed(2))
results.b1_fractionOfBandwidthBound = Number(
  (results.b1_base_decodeTokensPerSec! / boundTokPerSec).toFixed(3)
)
const b8x = results.b8_base_decodeTokensPerSec! / results.b1_base_decodeTokensPerSec!
const loraRatio = results.b8_lora_decodeTokensPerSec! / results.b8_base_decodeTokensPerSec!
const loraB1Ratio = results.b1_lora_decodeTokensPerSec! / results.b1_base_decodeTokensPerSec!
results.b8_loraAll16_vs_base = Number(
  (results.b8_loraAll16_decodeTokensPerSec! / results.b8_base_decodeTokensPerSec!).toFixed(3)
)
results.b1_loraAll16_vs_base = Number(
  (results.b1_loraAll16_decodeTokensPerSec! / results.b1_base_decodeTokensPerSec!).toFixed(3)
)
const goals = [
  { name: 'batch8_vs_batch1_decode', value: Number(b8x.toFixed(2)), target: '>= 3', met: b8x >= 3 },
  {
    name: 'lora_vs_base_batch8',
    value: Number(loraRatio.toFixed(3)),
    target: '>= 0.90',
    met: loraRatio >= 0.9
  },
  {
    name: 'lora_vs_base_batch1',
    value: Number(loraB1Ratio.toFixed(3)),
    target: '>= 0.90',
    met: loraB1Ratio >= 0.9
  },
  {
    name: 'cached_load_vs_cold',
    value: Number((cachedLoadMs / coldLoadMs).toFixed(3)),
    target: '<= 0.5',
    met: cachedLoadMs <= coldLoadMs * 0.5
  }
]
const out = {
  bench: 'model',
  machine: {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    node: process.version,
    ort: '1.30.0',
    gpu: null,
    executionProvider: 'cpu'
  },
  config: {
    preset,
    promptTokens: PROMPT,
    decodeTokens: DECODE_TOKENS,
    maxSeqLen: 1024,
    rounds: ROUNDS,
    intraOpThreads: threads ?? 'ort default',
    adapter:
      'lora: rank 8 on q_proj,v_proj; loraAll16: rank 16 on all seven projections; a different adapter per row; base: graph without LoRA ops',
    warm: 'session created and one warm-up round run before measuring; cases interleaved per round'
  },
  results,
  goals
}
if (values.json) console.log(JSON.stringify(out))
else {
  console.table(results)
  console.table(goals)
}
