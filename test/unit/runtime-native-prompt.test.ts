// Prompt passes on the native engine (LoadModelOptions.promptKernels 'native', docs/NATIVE-DECODE.md
// "Prompts") against ONNX Runtime's decode graph fed each prompt one token a step (the same
// arithmetic: ORT's own prompt path computes int4 with fp32 activations, the engine and every
// decode step with int8 ones), on the same built weights: every weight
// format, two Llama-shaped presets. Three kinds of prompt pass, as the step planner makes them
// (model/step-plan.ts): two first prompts of different lengths in one pass (a dummy row between
// them, one row with a LoRA adapter on all seven projections); a first prompt longer than the
// engine's chunk (PROMPT_ROWS), so its later chunks attend to keys an earlier chunk wrote; and a
// later prefill chunk over a past. Each is followed by decode steps on the same engine, which
// read the keys and values the prompt passes left in the cache.
//
// Tolerances: as runtime-native-decode.test.ts (fp32 the same arithmetic in another order; int8
// and int4 quantize each Linear's input per block as MLAS does, so one activation crossing a
// rounding boundary can move a logit by ~2e-2; a wrong key position or a missed adapter moves
// them by whole units).
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadPeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { makeModel, type Preset } from '../../src/runtime/fixtures/make-model.ts'
import { PROJECTIONS } from '../../src/runtime/model/config.ts'
import { type LoadedModel, loadModel, PROMPT_ROWS } from '../../src/runtime/model/index.ts'
import { compileNative } from '../../src/runtime/native/compile.ts'
import { loadNativeAddon } from '../../src/runtime/native/decoder.ts'
import type { WeightFormat } from '../../src/runtime/weight-format.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-native-prompt-'))
const cacheDir = join(root, 'cache')
const TOL: Record<WeightFormat, number> = { fp32: 1e-4, int8: 5e-2, int4: 5e-2 }
const LINEARS = [...PROJECTIONS]
const LONG = PROMPT_ROWS + 23

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

const open = (dir: string, weightFormat: WeightFormat, native: boolean) =>
  loadModel(dir, {
    cacheDir,
    maxBatch: 3,
    maxSeqLen: LONG + 16,
    weightFormat,
    decodeKernels: native ? 'native' : 'ort',
    ...(native ? { promptKernels: 'native' as const } : {}),
    intraOpThreads: 2,
    pool: { slots: 3, maxRank: 8, targets: LINEARS }
  })

const tokens = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => 3 + ((i * 7 + seed * 13) % 200))

type Row = { seq: number; tokens: number[]; slot: number }

/**
 * Every logits line the scenario produces, in order; decode tokens follow `picked` when given.
 * `oneByOne`: each prompt goes in one token a step (decode passes), the reference: the same
 * arithmetic as a prompt pass whose rows see each other's keys, with nothing shared between rows.
 */
async function scenario(model: LoadedModel, picked: number[] | null, oneByOne: boolean) {
  const out: Float32Array[] = []
  const chosen: number[] = []
  const keep = (ls: Float32Array[]) => {
    for (const l of ls) out.push(Float32Array.from(l))
    return ls
  }
  const prompt = async (rows: Row[]) => {
    if (!oneByOne) return keep(await model.step(rows))
    const last: Float32Array[] = []
    for (const r of rows) {
      let l: Float32Array | undefined
      for (const t of r.tokens) [l] = await model.step([{ ...r, tokens: [t] }])
      last.push(l!)
    }
    return keep(last)
  }
  const next = (l: Float32Array) => {
    const t = picked ? picked[chosen.length]! : argmax(l)
    chosen.push(t)
    return t
  }
  const [a, idle, b] = [model.allocSequence(), model.allocSequence(), model.allocSequence()]
  try {
    // two first prompts in one pass (row 1 a dummy between them), row 0 with the adapter
    let [la, lb] = (await prompt([
      { seq: a, tokens: tokens(9, 1), slot: 1 },
      { seq: b, tokens: tokens(21, 2), slot: 0 }
    ])) as [Float32Array, Float32Array]
    for (let s = 0; s < 2; s++)
      [la, lb] = keep(
        await model.step([
          { seq: a, tokens: [next(la)], slot: 1 },
          { seq: b, tokens: [next(lb)], slot: 0 }
        ])
      ) as [Float32Array, Float32Array]
      // a later prefill chunk over row 0's past (13 rows: fp32 runs two 6-row gemmF32 passes and a
      // 1-row one; the first prompts' 30 rows five 6-row passes, the long one's 256 + 23 a 4- and a
      // 5-row remainder)
    ;[la] = (await prompt([{ seq: a, tokens: tokens(13, 3), slot: 1 }])) as [Float32Array]
    ;[la] = keep(await model.step([{ seq: a, tokens: [next(la)], slot: 1 }])) as [Float32Array]
    model.freeSequence(b)
    // a first prompt longer than a chunk, with the adapter
    const c = model.allocSequence()
    let [lc] = (await prompt([{ seq: c, tokens: tokens(LONG, 4), slot: 1 }])) as [Float32Array]
    for (let s = 0; s < 2; s++)
      [lc] = keep(await model.step([{ seq: c, tokens: [next(lc)], slot: 1 }])) as [Float32Array]
    model.freeSequence(c)
  } finally {
    for (const seq of [a, idle]) model.freeSequence(seq)
  }
  return { out, chosen }
}

// int8 and int4 twice: on the decode layout's AVX-512 kernels (decode's arithmetic,
// OPENLORA_NATIVE_INT8_COPY=never) and on the int8 prompt copy (amx.h: the weights as int8 per
// output column and u8 activations per row, as ORT's prefill graph computes, so its own bound:
// seen ≤ 0.112 on these presets, against ≥ 1 for a wrong key or a missed adapter), which runs on
// AMX where the CPU has it and on AVX-512 VNNI elsewhere, the same integer sums either way
const HAS_AMX = /\bamx_int8\b/.test(existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '')
const CASES = [
  ['fp32', 'AVX-512', TOL.fp32],
  ['int8', 'AVX-512', TOL.int8],
  ['int4', 'AVX-512', TOL.int4],
  ['int8', 'int8 copy', 0.15],
  ['int4', 'int8 copy', 0.15]
] as const

test('the engine runs int4 and int8 prompt chunks on AMX exactly where the CPU has it', async () => {
  const addon = loadNativeAddon(await compileNative({}))
  delete process.env.OPENLORA_NATIVE_AMX
  assert.is(addon.info().amx, HAS_AMX)
  process.env.OPENLORA_NATIVE_AMX = 'never'
  assert.is(addon.info().amx, false)
  delete process.env.OPENLORA_NATIVE_AMX
})

const differ = (a: Float32Array[], b: Float32Array[]) => Math.max(...a.map((l, i) => maxAbsDiff(l, b[i]!)))

for (const preset of ['tiny', 'llama3-tiny'] as Preset[]) {
  for (const [format, kernels, tol] of CASES) {
    test(`native prompt passes equal ORT's (${preset}, ${format}, ${kernels}): two first prompts, a later chunk, ${LONG} tokens`, async () => {
      delete process.env.OPENLORA_NATIVE_AMX
      if (kernels === 'AVX-512') process.env.OPENLORA_NATIVE_INT8_COPY = 'never'
      const dir = join(root, `m-${preset}`)
      const adapter = join(root, `a-${preset}`)
      if (format === 'fp32') {
        await makeModel({ preset, seed: 3, out: dir })
        await makeAdapter({ model: dir, out: adapter, rank: 8, alpha: 16, targets: LINEARS, seed: 4 })
      }
      const ort = await open(dir, format, false)
      const native = await open(dir, format, true)
      try {
        assert.is(native.decodeKernels, 'native')
        const weights = await loadPeftAdapter(adapter, native.config)
        ort.pools.write(1, weights)
        native.pools.write(1, weights)
        const want = await scenario(ort, null, true)
        const got = await scenario(native, want.chosen, false)
        assert.is(got.out.length, want.out.length)
        let worst = 0
        for (let i = 0; i < want.out.length; i++) {
          const d = maxAbsDiff(got.out[i]!, want.out[i]!)
          worst = Math.max(worst, d)
          assert.ok(d <= tol, `logits line ${i}: max |Δ logit| ${d} > ${tol}`)
        }
        if (kernels === 'int8 copy') {
          // it ran: the decode layout's kernels compute other bits
          process.env.OPENLORA_NATIVE_INT8_COPY = 'never'
          const plain = await open(dir, format, true)
          delete process.env.OPENLORA_NATIVE_INT8_COPY
          try {
            plain.pools.write(1, weights)
            const apart = differ((await scenario(plain, want.chosen, false)).out, got.out)
            assert.ok(
              apart > 1e-4,
              `int8-copy and decode-layout prompts agree to ${apart}: the copy did not run`
            )
          } finally {
            await plain.dispose()
          }
          if (HAS_AMX) {
            // AMX ran above; AVX-512 VNNI on the same copy sums the same integers (amxPermitted
            // reads the variable at each chunk)
            process.env.OPENLORA_NATIVE_AMX = 'never'
            const vnni = await scenario(native, want.chosen, false)
            delete process.env.OPENLORA_NATIVE_AMX
            assert.is(differ(vnni.out, got.out), 0, 'AMX and VNNI on the int8 copy differ')
          }
        }
      } finally {
        await ort.dispose()
        await native.dispose()
        delete process.env.OPENLORA_NATIVE_AMX
        delete process.env.OPENLORA_NATIVE_INT8_COPY
      }
    })
  }
}

// A sliding window shorter than the prompts (a Mistral-style config on the tiny preset): rows of
// one 16-row block start their windows at different positions (step.h attendBlock masks each lane)
test(`native prompt passes equal ORT's (tiny with a sliding window of 24, fp32): two first prompts, a later chunk, ${LONG} tokens`, async () => {
  process.env.OPENLORA_NATIVE_AMX = 'never'
  const dir = join(root, 'm-window')
  const adapter = join(root, 'a-window')
  const made = await makeModel({
    preset: 'tiny',
    seed: 5,
    out: dir,
    overrides: { use_sliding_window: true, sliding_window: 24 }
  })
  assert.is(made.config.slidingWindow, 24)
  await makeAdapter({ model: dir, out: adapter, rank: 8, alpha: 16, targets: LINEARS, seed: 6 })
  const ort = await open(dir, 'fp32', false)
  const native = await open(dir, 'fp32', true)
  try {
    assert.is(native.decodeKernels, 'native')
    const weights = await loadPeftAdapter(adapter, native.config)
    ort.pools.write(1, weights)
    native.pools.write(1, weights)
    const want = await scenario(ort, null, true)
    const got = await scenario(native, want.chosen, false)
    assert.is(got.out.length, want.out.length)
    for (let i = 0; i < want.out.length; i++) {
      const d = maxAbsDiff(got.out[i]!, want.out[i]!)
      assert.ok(d <= TOL.fp32, `logits line ${i}: max |Δ logit| ${d} > ${TOL.fp32}`)
    }
  } finally {
    await ort.dispose()
    await native.dispose()
    delete process.env.OPENLORA_NATIVE_AMX
  }
})

test.run()
