// Issue 17: every weight format beside its llama.cpp counterpart on the same weights — fp32/F32,
// int8/Q8_0, int4/Q4_0 — batch-1 decode and prompt-processing speed (interleaved rounds, rotating
// who goes first), optionally a long prompt (512 tokens) and, for int8, the same rounds on a graph
// with block 128 everywhere (the A/B of padded vs fitted blocks), and each engine's error against
// the fp32 reference on the same prompts.
//
// Error: the reference is our fp32 graph (exact to the reference forward pass, golden tests). For
// each prompt both engines' next-token distributions after the prompt are compared with the
// reference's: KL(ref ‖ engine) in nats and the largest |Δ log p| over the tokens the reference
// gives p ≥ 1e-4. llama.cpp exposes probabilities, not logits (temperature 1, no top-k/top-p/min-p
// = the full softmax), hence log-probabilities (logits up to a constant) for both.
import { existsSync } from 'node:fs'
import { rename } from 'node:fs/promises'
import { join } from 'node:path'
import type { Llama, LlamaContext, Token } from 'node-llama-cpp'
import { silentLogger } from '../../src/common/log.ts'
import { exportModelToGguf } from '../../src/runtime/export/gguf-families.ts'
import type { TensorDtype } from '../../src/runtime/formats/gguf.ts'
import { type LoadedModel, loadModel } from '../../src/runtime/model/index.ts'
import { compileNative } from '../../src/runtime/native/compile.ts'
import { loadNativeAddon } from '../../src/runtime/native/decoder.ts'
import { WEIGHT_FORMATS, type WeightFormat } from '../../src/runtime/weight-format.ts'
import { llamaSingle } from './vs-llamacpp-sides.ts'

export const FORMAT_PAIRS: readonly { ours: WeightFormat; llama: TensorDtype }[] = [
  { ours: 'fp32', llama: 'F32' },
  { ours: 'int8', llama: 'Q8_0' },
  { ours: 'int4', llama: 'Q4_0' }
]

export interface FormatRun {
  modelDir: string
  cache: string
  llama: Llama
  threads: number
  rounds: number
  maxSeqLen: number
  newTokens: number
  prompt: () => number[]
  eos: Set<number>
  say: (m: string) => void
  /** which of FORMAT_PAIRS to run; default all */
  formats?: readonly WeightFormat[]
  /** errors against our fp32 graph (needs it built and loaded: 5 GB at 1B); default true */
  reference?: boolean
  /** also time prompt processing of this many tokens (both engines, interleaved); 0 = not */
  longPrompt?: number
  /** the int8 pair also times a graph with block 128 on every Linear (padded where K needs) */
  int8BlockAB?: boolean
  /** ORT session config of our models (the spinning policy) */
  sessionConfig?: Record<string, string>
  /** a memory-bandwidth sample (GB/s), taken once per round */
  bandwidth?: () => number | Promise<number>
  /** a read-bandwidth sample (GB/s: the decode threads reading a large buffer), once per round */
  readBandwidth?: () => number | Promise<number>
}

function logSoftmax(x: ArrayLike<number>): Float64Array {
  let m = Number.NEGATIVE_INFINITY
  for (let i = 0; i < x.length; i++) m = Math.max(m, x[i]!)
  let s = 0
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i]! - m)
  const lse = m + Math.log(s)
  return Float64Array.from(x as ArrayLike<number>, (v) => v - lse)
}

type DistError = { kl: number; maxAbsLogP: number }

/** KL(ref ‖ got) and max |Δ log p| where the reference's p ≥ 1e-4. */
export function distributionError(ref: Float64Array, got: Float64Array): DistError {
  let kl = 0
  let maxAbs = 0
  for (let i = 0; i < ref.length; i++) {
    const p = Math.exp(ref[i]!)
    kl += p * (ref[i]! - got[i]!)
    if (p >= 1e-4) maxAbs = Math.max(maxAbs, Math.abs(ref[i]! - got[i]!))
  }
  return { kl, maxAbsLogP: maxAbs }
}

async function oursLogProbs(model: LoadedModel, p: number[]): Promise<Float64Array> {
  const seq = model.allocSequence()
  try {
    return logSoftmax((await model.step([{ seq, tokens: p, slot: 0 }]))[0]!)
  } finally {
    model.freeSequence(seq)
  }
}

/** The same distribution with the prompt's last token run as a decode step (the decode kernels). */
async function oursDecodeStepLogProbs(model: LoadedModel, p: number[]): Promise<Float64Array> {
  const seq = model.allocSequence()
  try {
    await model.step([{ seq, tokens: p.slice(0, -1), slot: 0 }])
    return logSoftmax((await model.step([{ seq, tokens: p.slice(-1), slot: 0 }]))[0]!)
  } finally {
    model.freeSequence(seq)
  }
}

async function llamaLogProbs(ctx: LlamaContext, p: number[], vocab: number): Promise<Float64Array> {
  const seq = ctx.getSequence()
  try {
    const it = seq.evaluateWithMetadata(
      p as Token[],
      { probabilities: true },
      { temperature: 1, topK: 0, topP: 1, minP: 0 }
    )
    const first = await it.next()
    await it.return()
    const probs = first.done ? new Map<Token, number>() : first.value.probabilities
    // a token llama.cpp leaves out of the list had probability ~0: floor it so KL stays finite
    return Float64Array.from({ length: vocab }, (_, t) =>
      Math.log(Math.max(probs.get(t as Token) ?? 0, 1e-30))
    )
  } finally {
    seq.dispose()
  }
}

/** Prompt processing alone on our side: one step over the prompt (its logits and nothing after). */
async function oursPrefill(model: LoadedModel, p: number[]): Promise<number> {
  const seq = model.allocSequence()
  try {
    const t0 = performance.now()
    await model.step([{ seq, tokens: p, slot: 0 }])
    return p.length / ((performance.now() - t0) / 1000)
  } finally {
    model.freeSequence(seq)
  }
}

/** Greedy decode timing on our side: the model's own step loop, as llamaSingle does for llama.cpp. */
async function oursDecode(model: LoadedModel, p: number[], newTokens: number, eos: Set<number>) {
  const seq = model.allocSequence()
  try {
    const argmax = (x: Float32Array) => {
      let b = 0
      for (let i = 1; i < x.length; i++) if (x[i]! > x[b]!) b = i
      return b
    }
    const t0 = performance.now()
    let next = argmax((await model.step([{ seq, tokens: p, slot: 0 }]))[0]!)
    const t1 = performance.now()
    let n = 1
    while (n < newTokens && !eos.has(next)) {
      next = argmax((await model.step([{ seq, tokens: [next], slot: 0 }]))[0]!)
      n++
    }
    return {
      promptTokS: p.length / ((t1 - t0) / 1000),
      decodeTokS: (n - 1) / ((performance.now() - t1) / 1000)
    }
  } finally {
    model.freeSequence(seq)
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!
const r3 = (x: number) => Math.round(x * 1000) / 1000

/** Runs `fns` in an order that rotates by round, so none always runs first (on a warmer cache). */
async function rotated(round: number, fns: (() => Promise<void>)[]): Promise<void> {
  for (let i = 0; i < fns.length; i++) await fns[(i + round) % fns.length]!()
}

type Side = { decode: number[]; prompt: number[]; long: number[] }
const side = (): Side => ({ decode: [], prompt: [], long: [] })
const stat = (xs: number[]) => (xs.length === 0 ? null : r3(median(xs)))
type Pair = { ours: number | null; llama: number | null }

/** One format pair's figures (medians of the interleaved rounds; null = not measured). */
export interface PairResult {
  llamaCpp: TensorDtype
  decodeTokS: Pair & { rounds: number }
  decodeRatio: number | null
  decodeRatioOfBest: number
  decodePerRound: number[]
  promptTokS: Pair & { tokens: number }
  promptRatio: number | null
  longPromptTokS?: Pair & { tokens: number }
  longPromptRatio?: number | null
  longPromptPerRound?: number[]
  int8BlockAB?: {
    block128DecodeTokS: number | null
    fittedVs128Decode: number | null
    fittedVs128Prompt: number | null
    perRound: number[]
  }
  /** our decode on the native kernels (the default) ÷ on ORT's decode graph, same rounds */
  decodeKernelsAB?: {
    oursDecodeKernels: string
    ortDecodeTokS: ReturnType<typeof stat>
    nativeVsOrt: number | null
    perRound: number[]
  }
  /** where the served prompt passes ran: int8/int4 on the native engine's int8 copy (AMX or
   * AVX-512 VNNI) or ORT's prefill graph; fp32 on the native engine (its GEMM and 16-row attention)
   * or ORT's graph */
  promptKernels?: 'native-amx' | 'native-vnni' | 'ort-prefill-graph' | 'native' | 'ort'
  /** served native prompts ÷ ORT's prefill graph, same rounds (when native prompts are served) */
  nativeVsPrefillGraph?: {
    prefillGraphPromptTokS: ReturnType<typeof stat>
    prefillGraphLongPromptTokS: ReturnType<typeof stat> | null
    promptSpeedup: number | null
    longPromptSpeedup: number | null
    prefillGraphErrorVsFp32: DistError | null
  }
  /** the served prompt path ÷ every pass on the decode graph (int8/int4: MatMulNBits, neither
   * option; fp32: ORT's MatMul graph), same rounds */
  promptPathAB?: {
    withoutPromptTokS: ReturnType<typeof stat>
    withoutLongPromptTokS: ReturnType<typeof stat> | null
    promptSpeedup: number | null
    longPromptSpeedup: number | null
  }
  errorVsFp32: {
    ours: DistError
    oursDecodeGraph?: DistError
    oursDecodeStep: DistError
    llama: DistError
    prompts: number
  } | null
}

export async function runFormatPairs(run: FormatRun) {
  const prompts = Array.from({ length: 4 }, run.prompt)
  const longPrompt = () => Array.from({ length: Math.ceil((run.longPrompt ?? 0) / 32) }, run.prompt).flat()
  const open = (
    weightFormat: WeightFormat,
    int8Block?: number,
    prefillGraph?: boolean,
    decodeKernels?: 'ort',
    promptKernels?: 'native' | 'ort'
  ) =>
    loadModel(run.modelDir, {
      cacheDir: join(run.cache, 'graphs'),
      weightFormat,
      ...(decodeKernels ? { decodeKernels } : {}),
      ...(promptKernels ? { promptKernels } : {}),
      ...(int8Block === undefined ? {} : { int8Block }),
      ...(prefillGraph === undefined ? {} : { prefillGraph }),
      intraOpThreads: run.threads,
      maxBatch: 1,
      maxSeqLen: run.maxSeqLen,
      pool: { targets: [] },
      ...(run.sessionConfig ? { sessionConfig: run.sessionConfig } : {}),
      log: silentLogger
    })
  const refLogP: Float64Array[] = []
  const refStepLogP: Float64Array[] = []
  if (run.reference !== false) {
    // the reference runs on ORT's fp32 graph, the one the golden tests check
    const reference = await open('fp32', undefined, undefined, 'ort')
    for (const p of prompts) refLogP.push(await oursLogProbs(reference, p))
    for (const p of prompts) refStepLogP.push(await oursDecodeStepLogProbs(reference, p))
    await reference.dispose()
  }
  const vocab = refLogP[0]?.length ?? 0
  // the kernels this build has (AVX-512 VNNI, AMX): where prompts are served
  const nativeInfo = loadNativeAddon(await compileNative()).info()
  const nativeAmx = nativeInfo.amx
  const copyGBps: number[] = []
  const readGBps: number[] = []

  const out: Partial<Record<WeightFormat, PairResult>> = {}
  for (const pair of FORMAT_PAIRS.filter((f) => (run.formats ?? WEIGHT_FORMATS).includes(f.ours))) {
    const gguf = join(run.cache, `model-${pair.llama.toLowerCase()}.gguf`)
    if (!existsSync(gguf)) {
      run.say(`exporting ${gguf}`)
      // written aside and renamed: an interrupted export must not pass for a finished one
      await exportModelToGguf(run.modelDir, `${gguf}.tmp`, { dtype: pair.llama })
      await rename(`${gguf}.tmp`, gguf)
    }
    run.say(`format pair ${pair.ours} / ${pair.llama}`)
    // int8/int4 prompts as served: on the native engine where it runs them on AMX (an int8 copy of
    // the weights, docs/NATIVE-DECODE.md "Prompts"), else on ORT's prefill graph (the same +1 byte a
    // weight); `plain` runs every pass on MatMulNBits (neither option), `prefill` is the prefill
    // graph beside native prompts (their A/B in the same rounds)
    // fp32 prompts on the native engine where it has its AVX-512 kernels (register-blocked GEMM,
    // attention 16 rows at a time), with ORT's graph as `plain` beside them
    const quantized = pair.ours === 'int8' || pair.ours === 'int4'
    // prompts as served (promptKernels auto): on the native engine where it has its AVX-512 VNNI
    // kernels, int8/int4 from its int8 copy of the weights (on AMX where the CPU has it); else on
    // ORT, int8/int4 on the prefill graph
    const vnni = nativeInfo.simd === 'avx512vnni'
    const ours = await open(
      pair.ours,
      undefined,
      quantized && !vnni ? true : undefined,
      undefined,
      vnni ? 'native' : 'ort'
    )
    const prefill = quantized && vnni ? await open(pair.ours, undefined, true, undefined, 'ort') : null
    const padded = pair.ours === 'int8' && run.int8BlockAB ? await open('int8', 128, true) : null
    // the same format without its prompt-pass graph (every pass on MatMulNBits): what the prefill
    // graph buys in the same rounds, and the decode graph's own error on the prompts
    const plain = quantized
      ? await open(pair.ours, undefined, false, undefined, 'ort')
      : vnni
        ? await open('fp32', undefined, undefined, undefined, 'ort')
        : null
    // the same format with decode passes on ORT's decode graph: what the native kernels buy
    const ortDecode =
      ours.decodeKernels === 'native' ? await open(pair.ours, undefined, undefined, 'ort') : null
    const lm = await run.llama.loadModel({ modelPath: gguf })
    const ctx = await lm.createContext({ contextSize: run.maxSeqLen, threads: run.threads, sequences: 1 })
    try {
      const err = {
        ours: [] as DistError[],
        llama: [] as DistError[],
        plain: [] as DistError[],
        step: [] as DistError[],
        prefill: [] as DistError[]
      }
      for (let i = 0; i < refLogP.length; i++) {
        err.ours.push(distributionError(refLogP[i]!, await oursLogProbs(ours, prompts[i]!)))
        err.step.push(distributionError(refStepLogP[i]!, await oursDecodeStepLogProbs(ours, prompts[i]!)))
        if (plain && quantized)
          err.plain.push(distributionError(refLogP[i]!, await oursLogProbs(plain, prompts[i]!)))
        if (prefill)
          err.prefill.push(distributionError(refLogP[i]!, await oursLogProbs(prefill, prompts[i]!)))
        err.llama.push(distributionError(refLogP[i]!, await llamaLogProbs(ctx, prompts[i]!, vocab)))
      }
      // warm-up (not measured), then interleaved rounds
      await oursDecode(ours, run.prompt(), run.newTokens, run.eos)
      if (padded) await oursDecode(padded, run.prompt(), run.newTokens, run.eos)
      if (ortDecode) await oursDecode(ortDecode, run.prompt(), run.newTokens, run.eos)
      await llamaSingle(ctx, run.prompt(), run.eos)
      // a long prompt's first run grows ORT's arena and llama.cpp's compute buffers: not measured
      if (plain) await oursPrefill(plain, run.prompt())
      if (prefill) await oursPrefill(prefill, run.prompt())
      if (run.longPrompt) {
        await oursPrefill(ours, longPrompt())
        if (plain) await oursPrefill(plain, longPrompt())
        if (prefill) await oursPrefill(prefill, longPrompt())
        await llamaSingle(ctx, longPrompt(), run.eos, 1)
      }
      const S = { ours: side(), llama: side(), padded: side(), plain: side(), ort: side(), prefill: side() }
      for (let r = 0; r < run.rounds; r++) {
        const p = run.prompt()
        const oursRound = (m: LoadedModel, into: Side) => async () => {
          const x = await oursDecode(m, p, run.newTokens, run.eos)
          into.decode.push(x.decodeTokS)
          into.prompt.push(x.promptTokS)
        }
        await rotated(r, [
          oursRound(ours, S.ours),
          async () => {
            const x = await llamaSingle(ctx, p, run.eos)
            S.llama.decode.push(x.decodeTokS)
            S.llama.prompt.push(x.promptTokS)
          },
          ...(padded ? [oursRound(padded, S.padded)] : []),
          ...(ortDecode ? [oursRound(ortDecode, S.ort)] : []),
          ...(plain ? [async () => void S.plain.prompt.push(await oursPrefill(plain, p))] : []),
          ...(prefill ? [async () => void S.prefill.prompt.push(await oursPrefill(prefill, p))] : [])
        ])
        if (run.longPrompt) {
          const lp = longPrompt()
          await rotated(r, [
            async () => void S.ours.long.push(await oursPrefill(ours, lp)),
            async () => void S.llama.long.push((await llamaSingle(ctx, lp, run.eos, 1)).promptTokS),
            ...(plain ? [async () => void S.plain.long.push(await oursPrefill(plain, lp))] : []),
            ...(prefill ? [async () => void S.prefill.long.push(await oursPrefill(prefill, lp))] : [])
          ])
        }
        if (run.bandwidth) copyGBps.push(await run.bandwidth())
        if (run.readBandwidth) readGBps.push(await run.readBandwidth())
      }
      const mean = (xs: DistError[]) => ({
        // KL of int8 is ~1e-5: three significant digits, not three decimals
        kl: Number((xs.reduce((s, x) => s + x.kl, 0) / xs.length).toPrecision(3)),
        maxAbsLogP: r3(Math.max(...xs.map((x) => x.maxAbsLogP)))
      })
      const ratio = (a: number[], b: number[]) => (a.length === 0 ? null : r3(median(a) / median(b)))
      out[pair.ours] = {
        llamaCpp: pair.llama,
        decodeTokS: { ours: stat(S.ours.decode), llama: stat(S.llama.decode), rounds: run.rounds },
        decodeRatio: ratio(S.ours.decode, S.llama.decode),
        decodeRatioOfBest: r3(Math.max(...S.ours.decode) / Math.max(...S.llama.decode)),
        decodePerRound: S.ours.decode.map((x, i) => r3(x / S.llama.decode[i]!)),
        promptTokS: { ours: stat(S.ours.prompt), llama: stat(S.llama.prompt), tokens: prompts[0]!.length },
        promptRatio: ratio(S.ours.prompt, S.llama.prompt),
        ...(run.longPrompt
          ? {
              longPromptTokS: { ours: stat(S.ours.long), llama: stat(S.llama.long), tokens: run.longPrompt },
              longPromptRatio: ratio(S.ours.long, S.llama.long),
              // each round's pair ran within seconds of each other: their spread is the host's noise
              longPromptPerRound: S.ours.long.map((x, i) => r3(x / S.llama.long[i]!))
            }
          : {}),
        ...(padded
          ? {
              // int8 blocks fitted to K (the default) ÷ block 128 everywhere, same rounds
              int8BlockAB: {
                block128DecodeTokS: stat(S.padded.decode),
                fittedVs128Decode: ratio(S.ours.decode, S.padded.decode),
                fittedVs128Prompt: ratio(S.ours.prompt, S.padded.prompt),
                perRound: S.ours.decode.map((x, i) => r3(x / S.padded.decode[i]!))
              }
            }
          : {}),
        ...(ortDecode
          ? {
              decodeKernelsAB: {
                oursDecodeKernels: ours.decodeKernels,
                ortDecodeTokS: stat(S.ort.decode),
                nativeVsOrt: ratio(S.ours.decode, S.ort.decode),
                perRound: S.ours.decode.map((x, i) => r3(x / S.ort.decode[i]!))
              }
            }
          : {}),
        promptKernels: quantized
          ? vnni
            ? nativeAmx
              ? ('native-amx' as const)
              : ('native-vnni' as const)
            : ('ort-prefill-graph' as const)
          : vnni
            ? ('native' as const)
            : ('ort' as const),
        ...(prefill
          ? {
              // native prompts (served) ÷ the prefill graph, same rounds
              nativeVsPrefillGraph: {
                prefillGraphPromptTokS: stat(S.prefill.prompt),
                prefillGraphLongPromptTokS: run.longPrompt ? stat(S.prefill.long) : null,
                promptSpeedup: ratio(S.ours.prompt, S.prefill.prompt),
                longPromptSpeedup: run.longPrompt ? ratio(S.ours.long, S.prefill.long) : null,
                prefillGraphErrorVsFp32: err.prefill.length === 0 ? null : mean(err.prefill)
              }
            }
          : {}),
        ...(plain
          ? {
              // the served prompt path (native or the prefill graph) ÷ MatMulNBits for every pass
              promptPathAB: {
                withoutPromptTokS: stat(S.plain.prompt),
                withoutLongPromptTokS: run.longPrompt ? stat(S.plain.long) : null,
                promptSpeedup: ratio(S.ours.prompt, S.plain.prompt),
                longPromptSpeedup: run.longPrompt ? ratio(S.ours.long, S.plain.long) : null
              }
            }
          : {}),
        errorVsFp32:
          refLogP.length === 0
            ? null
            : {
                // ours: the prompt pass as served (the native int8 copy or the prefill graph for int8/int4);
                // oursDecodeGraph: the same prompts on the decode graph (MatMulNBits) alone
                ours: mean(err.ours),
                ...(plain && quantized ? { oursDecodeGraph: mean(err.plain) } : {}),
                // the prompt's last token as a decode step: the decode kernels' own error
                oursDecodeStep: mean(err.step),
                llama: mean(err.llama),
                prompts: prompts.length
              }
      }
    } finally {
      await ctx.dispose()
      await lm.dispose()
      await ours.dispose()
      await padded?.dispose()
      await plain?.dispose()
      await ortDecode?.dispose()
      await prefill?.dispose()
    }
  }
  return { pairs: out, copyGBps, readGBps }
}
