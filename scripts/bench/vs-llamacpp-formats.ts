// Issue 17: every weight format beside its llama.cpp counterpart on the same weights — fp32/F32,
// int8/Q8_0, int4/Q4_0 — batch-1 decode speed (interleaved A/B rounds, alternating who goes first)
// and each engine's error against the fp32 reference on the same prompts.
//
// Error: the reference is our fp32 graph (exact to the reference forward pass, golden tests). For
// each prompt both engines' next-token distributions after the prompt are compared with the
// reference's: KL(ref ‖ engine) in nats and the largest |Δ log p| over the tokens the reference
// gives p ≥ 1e-4. llama.cpp exposes probabilities, not logits (temperature 1, no top-k/top-p/min-p
// = the full softmax), hence log-probabilities (logits up to a constant) for both.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Llama, LlamaContext, Token } from 'node-llama-cpp'
import { silentLogger } from '../../src/common/log.ts'
import { exportModelToGguf } from '../../src/runtime/export/gguf-families.ts'
import type { TensorDtype } from '../../src/runtime/formats/gguf.ts'
import { type LoadedModel, loadModel } from '../../src/runtime/model/index.ts'
import type { WeightFormat } from '../../src/runtime/weight-format.ts'
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

/** Greedy decode timing on our side: the model's own step loop, as llamaSingle does for llama.cpp. */
async function oursDecode(model: LoadedModel, p: number[], newTokens: number, eos: Set<number>) {
  const seq = model.allocSequence()
  try {
    const argmax = (x: Float32Array) => {
      let b = 0
      for (let i = 1; i < x.length; i++) if (x[i]! > x[b]!) b = i
      return b
    }
    let next = argmax((await model.step([{ seq, tokens: p, slot: 0 }]))[0]!)
    const t1 = performance.now()
    let n = 1
    while (n < newTokens && !eos.has(next)) {
      next = argmax((await model.step([{ seq, tokens: [next], slot: 0 }]))[0]!)
      n++
    }
    return { decodeTokS: (n - 1) / ((performance.now() - t1) / 1000) }
  } finally {
    model.freeSequence(seq)
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!
const r3 = (x: number) => Math.round(x * 1000) / 1000

export async function runFormatPairs(run: FormatRun) {
  const prompts = Array.from({ length: 4 }, run.prompt)
  const open = (weightFormat: WeightFormat) =>
    loadModel(run.modelDir, {
      cacheDir: join(run.cache, 'graphs'),
      weightFormat,
      intraOpThreads: run.threads,
      maxBatch: 1,
      maxSeqLen: run.maxSeqLen,
      pool: { targets: [] },
      log: silentLogger
    })
  const reference = await open('fp32')
  const refLogP: Float64Array[] = []
  for (const p of prompts) refLogP.push(await oursLogProbs(reference, p))
  await reference.dispose()
  const vocab = refLogP[0]!.length

  const out: Record<string, unknown> = {}
  for (const pair of FORMAT_PAIRS) {
    const gguf = join(run.cache, `model-${pair.llama.toLowerCase()}.gguf`)
    if (!existsSync(gguf)) await exportModelToGguf(run.modelDir, gguf, { dtype: pair.llama })
    run.say(`format pair ${pair.ours} / ${pair.llama}`)
    const ours = await open(pair.ours)
    const lm = await run.llama.loadModel({ modelPath: gguf })
    const ctx = await lm.createContext({ contextSize: run.maxSeqLen, threads: run.threads, sequences: 1 })
    try {
      const err = { ours: [] as DistError[], llama: [] as DistError[] }
      for (let i = 0; i < prompts.length; i++) {
        err.ours.push(distributionError(refLogP[i]!, await oursLogProbs(ours, prompts[i]!)))
        err.llama.push(distributionError(refLogP[i]!, await llamaLogProbs(ctx, prompts[i]!, vocab)))
      }
      // warm-up, then interleaved rounds
      await oursDecode(ours, run.prompt(), run.newTokens, run.eos)
      await llamaSingle(ctx, run.prompt(), run.eos)
      const tps = { ours: [] as number[], llama: [] as number[] }
      for (let r = 0; r < run.rounds; r++) {
        const p = run.prompt()
        const a = async () =>
          void tps.ours.push((await oursDecode(ours, p, run.newTokens, run.eos)).decodeTokS)
        const b = async () => void tps.llama.push((await llamaSingle(ctx, p, run.eos)).decodeTokS)
        if (r % 2 === 0) {
          await a()
          await b()
        } else {
          await b()
          await a()
        }
      }
      const mean = (xs: DistError[]) => ({
        // KL of int8 is ~1e-5: three significant digits, not three decimals
        kl: Number((xs.reduce((s, x) => s + x.kl, 0) / xs.length).toPrecision(3)),
        maxAbsLogP: r3(Math.max(...xs.map((x) => x.maxAbsLogP)))
      })
      out[pair.ours] = {
        llamaCpp: pair.llama,
        decodeTokS: { ours: r3(median(tps.ours)), llama: r3(median(tps.llama)), rounds: run.rounds },
        decodeRatio: r3(median(tps.ours) / median(tps.llama)),
        decodeRatioOfBest: r3(Math.max(...tps.ours) / Math.max(...tps.llama)),
        errorVsFp32: { ours: mean(err.ours), llama: mean(err.llama), prompts: prompts.length }
      }
    } finally {
      await ctx.dispose()
      await lm.dispose()
      await ours.dispose()
    }
  }
  return out
}
