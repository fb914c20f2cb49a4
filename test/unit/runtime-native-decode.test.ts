// The native decode path (src/runtime/native/, issue 17) against ONNX Runtime's decode graph on
// the same built weights: every weight format, three Llama-shaped presets (plain; Llama 3 RoPE
// scaling with head_dim ≠ hidden/heads and an untied head; Qwen2 q/k/v biases with an MLP width
// whose int4 blocks do not pair up), a batch of rows at different lengths, one row with a LoRA
// adapter on all seven projections and one without, in a worker thread as the node runs it.
// Both sides start each decode step from the same tokens (ORT's greedy pick), so an error cannot
// hide behind a diverging sequence.
//
// Tolerances: fp32 is the same arithmetic in another order (seen ≤ 2e-6). int8/int4 quantize
// each Linear's input per block exactly as MLAS does (scale = max|x| / 127, round half to even),
// so most steps agree to ~1e-6; but a float difference at the 1e-7 level can move one activation
// across a rounding boundary, and that code's step (1/127 of its block's largest value) then
// moves the logits by up to ~2e-2 (seen on smollm2-135m). The bound allows that, and stays far
// below what a wrong layout or a missed adapter does (an adapter moves these logits by 3–4).
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadPeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { makeModel, type Preset } from '../../src/runtime/fixtures/make-model.ts'
import { PROJECTIONS } from '../../src/runtime/model/config.ts'
import { type LoadedModel, loadModel } from '../../src/runtime/model/index.ts'
import type { WeightFormat } from '../../src/runtime/weight-format.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-native-'))
const cacheDir = join(root, 'cache')
const TOL: Record<WeightFormat, number> = { fp32: 1e-4, int8: 5e-2, int4: 5e-2 }
const LINEARS = [...PROJECTIONS]

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.is(a.length, b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

const argmax = (x: ArrayLike<number>) => {
  let best = 0
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i
  return best
}

// int8/int4 prompts on ORT on both sides, so that every decode step starts from the same keys and
// values (the native engine's int8 prompt copy computes other bits: runtime-native-prompt.test.ts)
const open = (dir: string, weightFormat: WeightFormat, decodeKernels: 'native' | 'ort', maxBatch = 3) =>
  loadModel(dir, {
    cacheDir,
    maxBatch,
    maxSeqLen: 64,
    weightFormat,
    decodeKernels,
    ...(weightFormat === 'fp32' ? {} : { promptKernels: 'ort' as const }),
    intraOpThreads: 2,
    pool: { slots: 3, maxRank: 8, targets: LINEARS }
  })

const models = new Map<Preset, { dir: string; adapter: string }>()
async function fixture(preset: Preset) {
  let f = models.get(preset)
  if (!f) {
    const dir = join(root, `m-${preset}`)
    await makeModel({ preset, seed: 3, out: dir })
    const adapter = join(root, `a-${preset}`)
    await makeAdapter({ model: dir, out: adapter, rank: 8, alpha: 16, targets: LINEARS, seed: 4 })
    models.set(preset, (f = { dir, adapter }))
  }
  return f
}

/**
 * Rows 0 and 2 decode together (row 1 idle between them, so the pass has a dummy row): row 0
 * with the adapter (slot 1), row 2 without. Returns each decode step's logits of both rows.
 */
async function decodeSteps(model: LoadedModel, tokens: number[][] | null, steps: number) {
  const [a, idle, b] = [model.allocSequence(), model.allocSequence(), model.allocSequence()]
  const out: Float32Array[][] = []
  const picked: number[][] = []
  try {
    let la = (await model.step([{ seq: a, tokens: [5, 9, 13, 2, 7], slot: 1 }]))[0]!
    let lb = (await model.step([{ seq: b, tokens: [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], slot: 0 }]))[0]!
    for (let s = 0; s < steps; s++) {
      const next = tokens ? tokens[s]! : [argmax(la), argmax(lb)]
      picked.push(next)
      ;[la, lb] = (await model.step([
        { seq: a, tokens: [next[0]!], slot: 1 },
        { seq: b, tokens: [next[1]!], slot: 0 }
      ])) as [Float32Array, Float32Array]
      out.push([Float32Array.from(la), Float32Array.from(lb)])
    }
  } finally {
    for (const seq of [a, idle, b]) model.freeSequence(seq)
  }
  return { out, picked }
}

// int4 three ways: in 16-row tiles (kernels.h int4Tiles, what SIMD builds use wherever the widths
// are multiples of 16, as these are), and in the row-major layout (any other width, or
// OPENLORA_NATIVE_INT4_TILES=never) with fp32 scales and with the fp16 copy large models use
// (decoder.cc halfScalesBeyondCache), both forced by their overrides. Every case reads the
// weights from the engine's huge-page copies (decoder.cc hotCopies), forced too: the machine's
// transparent huge pages setting would otherwise decide.
const CASES = [
  ['fp32', 'default'],
  ['int8', 'default'],
  ['int4', 'tiles'],
  ['int4', 'rows, fp32 scales'],
  ['int4', 'rows, fp16 scales']
] as const

for (const preset of ['tiny', 'llama3-tiny', 'qwen2-tiny'] as const) {
  for (const [format, layout] of CASES) {
    const what = format === 'int4' ? `, ${layout}` : ''
    test(`native decode equals ORT's decode graph (${preset}, ${format}${what}, 2 rows, one with an adapter)`, async () => {
      const rows = layout.startsWith('rows')
      // tiles forced: an engine whose scales the tiles cannot hold fails to open instead of
      // falling back to the row-major layout unseen
      process.env.OPENLORA_NATIVE_INT4_TILES = rows ? 'never' : 'always'
      if (rows) process.env.OPENLORA_NATIVE_HALF_SCALES = layout.endsWith('fp16 scales') ? 'always' : 'never'
      else delete process.env.OPENLORA_NATIVE_HALF_SCALES
      process.env.OPENLORA_NATIVE_HUGE_PAGES = 'always'
      const { dir, adapter } = await fixture(preset)
      const ort = await open(dir, format, 'ort')
      const native = await open(dir, format, 'native')
      try {
        assert.is(ort.decodeKernels, 'ort')
        assert.is(native.decodeKernels, 'native')
        const weights = await loadPeftAdapter(adapter, native.config)
        ort.pools.write(1, weights)
        native.pools.write(1, weights)
        const want = await decodeSteps(ort, null, 6)
        const got = await decodeSteps(native, want.picked, 6)
        for (let s = 0; s < want.out.length; s++) {
          for (const row of [0, 1]) {
            const d = maxAbsDiff(got.out[s]![row]!, want.out[s]![row]!)
            assert.ok(d <= TOL[format], `step ${s}, row ${row}: max |Δ logit| ${d} > ${TOL[format]}`)
          }
        }
      } finally {
        delete process.env.OPENLORA_NATIVE_HUGE_PAGES
        await ort.dispose()
        await native.dispose()
      }
    })
  }
}

/**
 * One row alone, then five rows together (step.h Decoder::linear splits an fp32 Linear's work one
 * way for 1 row, another for 2-3, a third for 4 and more; the quantized kernels switch at 3 rows):
 * each step's logits of every row, every row starting from the same tokens on both sides.
 */
async function widths(model: LoadedModel, tokens: number[][] | null, steps: number) {
  const seqs = Array.from({ length: 5 }, () => model.allocSequence())
  const out: Float32Array[][] = []
  const picked: number[][] = []
  try {
    let last = await Promise.all(
      seqs.map(async (seq, i) => (await model.step([{ seq, tokens: [3 + i, 8, 1 + i], slot: i % 2 }]))[0]!)
    )
    for (let s = 0; s < steps; s++) {
      const next = tokens ? tokens[s]! : last.map(argmax)
      picked.push(next)
      const rows = s % 2 === 0 ? [0] : [0, 1, 2, 3, 4]
      const got = await model.step(rows.map((i) => ({ seq: seqs[i]!, tokens: [next[i]!], slot: i % 2 })))
      last = last.map((l, i) => (rows.includes(i) ? Float32Array.from(got[rows.indexOf(i)]!) : l))
      out.push(rows.map((i) => last[i]!))
    }
  } finally {
    for (const seq of seqs) model.freeSequence(seq)
  }
  return { out, picked }
}

// fp32 both ways a CPU may run it (decoder.cc: Intel splits one row by columns and runs a batch
// on gemmF32; elsewhere one row by rows and a batch on gemmAcross), forced by the overrides; the
// first reads the weights where the file maps them (no huge-page copies)
const WIDTH_CASES = [
  ['fp32', { ONE_ROW: 'columns', BATCH: 'panels', HUGE_PAGES: 'never' }],
  ['fp32', { ONE_ROW: 'rows', BATCH: 'across', HUGE_PAGES: 'always' }],
  ['int8', null],
  ['int4', null]
] as const

for (const [format, kernels] of WIDTH_CASES) {
  const what = kernels ? `, one row split by ${kernels.ONE_ROW}, 5 rows on ${kernels.BATCH}` : ''
  test(`native decode equals ORT's decode graph (tiny, ${format}, 1 row, then 5 rows${what})`, async () => {
    delete process.env.OPENLORA_NATIVE_INT4_TILES
    delete process.env.OPENLORA_NATIVE_HALF_SCALES
    for (const [name, value] of Object.entries(kernels ?? { ONE_ROW: null, BATCH: null, HUGE_PAGES: null })) {
      if (value) process.env[`OPENLORA_NATIVE_${name}`] = value
      else delete process.env[`OPENLORA_NATIVE_${name}`]
    }
    const { dir, adapter } = await fixture('tiny')
    const ort = await open(dir, format, 'ort', 5)
    const native = await open(dir, format, 'native', 5)
    try {
      const weights = await loadPeftAdapter(adapter, native.config)
      ort.pools.write(1, weights)
      native.pools.write(1, weights)
      const want = await widths(ort, null, 4)
      const got = await widths(native, want.picked, 4)
      for (let s = 0; s < want.out.length; s++) {
        for (let r = 0; r < want.out[s]!.length; r++) {
          const d = maxAbsDiff(got.out[s]![r]!, want.out[s]![r]!)
          assert.ok(d <= TOL[format], `step ${s}, row ${r}: max |Δ logit| ${d} > ${TOL[format]}`)
        }
      }
    } finally {
      delete process.env.OPENLORA_NATIVE_ONE_ROW
      delete process.env.OPENLORA_NATIVE_BATCH
      delete process.env.OPENLORA_NATIVE_HUGE_PAGES
      await ort.dispose()
      await native.dispose()
    }
  })
}

// fp32 from a bf16 checkpoint (most ship so): every SIMD kernel reads each weight's bf16 half
// (kernels.h Linear::w16) and widens it exactly, so the logits must equal the fp32 kernels' bit for
// bit, through one row split both ways, 2-3 rows (a dummy row between two), 5 rows and prompts
// (5 and 11 tokens: gemmAcross and gemmF32), on the three presets' shapes (an untied head; widths
// that end in partial strips and masked loads)
for (const preset of ['tiny', 'llama3-tiny', 'qwen2-tiny'] as Preset[])
  test(`fp32 from a bf16 checkpoint (${preset}): the bf16 halves give the fp32 kernels' logits bit for bit`, async () => {
    const dir = join(root, `m-${preset}-bf16`)
    await makeModel({ preset, seed: 3, out: dir, dtype: 'BF16' })
    const adapter = join(root, `a-${preset}-bf16`)
    await makeAdapter({ model: dir, out: adapter, rank: 8, alpha: 16, targets: LINEARS, seed: 4 })
    for (const oneRow of ['rows', 'columns']) {
      process.env.OPENLORA_NATIVE_ONE_ROW = oneRow
      process.env.OPENLORA_NATIVE_BF16 = 'always'
      const halves = await open(dir, 'fp32', 'native', 5)
      process.env.OPENLORA_NATIVE_BF16 = 'never'
      const full = await open(dir, 'fp32', 'native', 5)
      const ort = await open(dir, 'fp32', 'ort', 5)
      try {
        const weights = await loadPeftAdapter(adapter, halves.config)
        for (const m of [halves, full, ort]) m.pools.write(1, weights)
        for (const run of [widths, decodeSteps]) {
          const want = await run(full, null, 4)
          const got = await run(halves, want.picked, 4)
          const ref = await run(ort, want.picked, 4)
          for (let s = 0; s < want.out.length; s++)
            for (let r = 0; r < want.out[s]!.length; r++) {
              const d = maxAbsDiff(got.out[s]![r]!, want.out[s]![r]!)
              assert.is(d, 0, `${run.name}, one row by ${oneRow}, step ${s}, row ${r}: max |Δ logit| ${d}`)
              const e = maxAbsDiff(got.out[s]![r]!, ref.out[s]![r]!)
              assert.ok(e <= TOL.fp32, `against ORT: ${run.name}, step ${s}, row ${r}: ${e} > ${TOL.fp32}`)
            }
        }
      } finally {
        delete process.env.OPENLORA_NATIVE_ONE_ROW
        delete process.env.OPENLORA_NATIVE_BF16
        for (const m of [halves, full, ort]) await m.dispose()
      }
    }
  })

test('OPENLORA_NATIVE_BF16=always refuses fp32 weights that are not bf16 values', async () => {
  const { dir } = await fixture('tiny') // stored as F32: its weights use all 32 bits
  process.env.OPENLORA_NATIVE_BF16 = 'always'
  try {
    const err = await open(dir, 'fp32', 'native').then(
      async (m) => {
        await m.dispose()
        return null
      },
      (e: Error) => e
    )
    assert.ok(err, 'the engine opened')
    assert.match(err.message, /is not a bf16 value/)
  } finally {
    delete process.env.OPENLORA_NATIVE_BF16
  }
})

test.run()
