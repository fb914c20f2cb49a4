// Engine limits. Each default says why it is what it is; every value is checked at start with an
// error naming the key and the allowed range.
import { InvalidParametersError } from '../../common/errors.ts'

export interface EngineLimits {
  /** KV-cache rows, i.e. sequences decoding together. Must equal the model's maxBatch: the
   * cache is allocated for this many rows up front. Default 8 (a 2-core CPU saturates near 8). */
  maxBatch: number
  /** prompt + generated tokens of one sequence; the KV cache is sized for it. Default 2048. */
  maxSeqLen: number
  /** requests waiting for a row; beyond it generate() throws BUSY so the router can go
   * elsewhere instead of letting clients time out in a line. Default 64 (8 batches deep). */
  maxQueued: number
  /** per request; bounds how long one request holds a row. Default 1024. */
  maxNewTokens: number
  /** prompt tokens one sequence feeds per step: a long prompt is cut into chunks so running
   * sequences keep decoding while it fills (Sarathi-style chunked prefill). Default 64. */
  prefillChunk: number
  /** tokens in one step over all rows; bounds a step's latency. Default 256. */
  maxStepTokens: number
}

export const DEFAULT_LIMITS: EngineLimits = {
  maxBatch: 8,
  maxSeqLen: 2048,
  maxQueued: 64,
  maxNewTokens: 1024,
  prefillChunk: 64,
  maxStepTokens: 256
}

const RANGES: Record<keyof EngineLimits, [number, number]> = {
  maxBatch: [1, 1024],
  maxSeqLen: [2, 1 << 20],
  maxQueued: [0, 1 << 20],
  maxNewTokens: [1, 1 << 20],
  prefillChunk: [1, 1 << 16],
  maxStepTokens: [1, 1 << 20]
}

export function resolveLimits(init: Partial<EngineLimits> = {}): EngineLimits {
  const out = { ...DEFAULT_LIMITS }
  for (const key of Object.keys(RANGES) as (keyof EngineLimits)[]) {
    const v = init[key]
    if (v === undefined) continue
    const [lo, hi] = RANGES[key]
    if (!Number.isInteger(v) || v < lo || v > hi)
      throw new InvalidParametersError(`engine.${key} must be an integer from ${lo} to ${hi}, got ${v}`, {
        key,
        value: v
      })
    out[key] = v
  }
  if (out.maxStepTokens < out.maxBatch)
    throw new InvalidParametersError(
      `engine.maxStepTokens (${out.maxStepTokens}) must be at least engine.maxBatch (${out.maxBatch}): every decoding row needs one token per step`,
      { key: 'maxStepTokens' }
    )
  return out
}
