// Measurement helpers of the runtime benchmark: percentiles, weight bytes per decode token, and
// the machine's copy bandwidth.
import { Worker } from 'node:worker_threads'
import { INT8_BLOCK } from '../../src/runtime/graph/quantize.ts'
import type { ModelConfig } from '../../src/runtime/model/config.ts'
import type { WeightFormat } from '../../src/runtime/weight-format.ts'

export function pct(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/**
 * Weight bytes one decode token reads: every projection, plus the lm_head. `bf16Halves`: fp32
 * weights of a bf16 checkpoint on the native engine, which reads their top halves, 2 bytes a
 * weight (docs/NATIVE-DECODE.md "Kernels"), where ORT reads all 4.
 */
export function weightBytesPerToken(
  c: ModelConfig,
  format: WeightFormat = 'fp32',
  bf16Halves = false
): number {
  const q = c.numHeads * c.headDim
  const kv = c.numKvHeads * c.headDim
  const perLayer = c.hiddenSize * (q + 2 * kv) + q * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize
  const weights = c.numLayers * perLayer + c.vocabSize * c.hiddenSize
  // int8: one byte per weight plus one fp32 scale per block
  if (format === 'int8') return weights * (1 + 4 / INT8_BLOCK)
  return (bf16Halves && format === 'fp32' ? 2 : 4) * weights
}

/**
 * Whether the native engine holds this model's fp32 Linears as bf16 halves: a checkpoint stored in
 * bf16 (config.json torch_dtype), served on the engine's AVX-512 kernels, not turned off.
 */
export function servesBf16Halves(torchDtype: unknown, decodeKernels: string, simd: string): boolean {
  return (
    torchDtype === 'bfloat16' &&
    decodeKernels === 'native' &&
    simd !== 'generic' &&
    process.env.OPENLORA_NATIVE_BF16 !== 'never'
  )
}

/**
 * Copy bandwidth with as many threads as ORT uses (STREAM convention: bytes read + written per
 * second), best of 5: what a decode step can at most stream from memory.
 */
export async function copyBandwidth(threads: number): Promise<number> {
  const n = 256 * 1024 * 1024
  const src = new SharedArrayBuffer(n)
  const dst = new SharedArrayBuffer(n)
  new Uint8Array(src).fill(1)
  const code = `const { parentPort, workerData: w } = require('node:worker_threads')
const a = new Uint8Array(w.src, w.lo, w.hi - w.lo)
const b = new Uint8Array(w.dst, w.lo, w.hi - w.lo)
parentPort.on('message', () => { b.set(a); parentPort.postMessage(0) })
parentPort.postMessage(0)`
  const part = Math.floor(n / threads / 64) * 64
  const workers = Array.from(
    { length: threads },
    (_, i) =>
      new Worker(code, {
        eval: true,
        workerData: { src, dst, lo: i * part, hi: i === threads - 1 ? n : (i + 1) * part }
      })
  )
  const round = () => Promise.all(workers.map((w) => new Promise((r) => w.once('message', r))))
  await round()
  let best = 0
  try {
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now()
      const done = round()
      for (const w of workers) w.postMessage(0)
      await done
      best = Math.max(best, (2 * n) / ((performance.now() - t0) / 1000))
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
  return best
}
