// Next-token sampling: greedy when temperature is 0 or absent, else temperature → top-k → top-p
// (nucleus) → one draw from the seeded generator. The same seed and logits give the same token on
// every node (the draw order and the float math are fixed here, not left to a library).
import { InvalidParametersError } from '../common/errors.ts'

/** The sampling fields of GenerationParams (docs/INTERFACES.md). */
export interface SamplingParams {
  temperature?: number
  topK?: number
  topP?: number
}

export function checkSamplingParams(p: SamplingParams): void {
  const t = p.temperature
  if (t !== undefined && (typeof t !== 'number' || !Number.isFinite(t) || t < 0 || t > 100)) {
    throw new InvalidParametersError(`temperature must be a number in 0..100 (0 = greedy), got ${t}`, {
      field: 'temperature'
    })
  }
  const k = p.topK
  if (k !== undefined && (!Number.isInteger(k) || k < 0)) {
    throw new InvalidParametersError(`topK must be a non-negative integer (0 = off), got ${k}`, {
      field: 'topK'
    })
  }
  const tp = p.topP
  if (tp !== undefined && (typeof tp !== 'number' || !(tp > 0) || tp > 1)) {
    throw new InvalidParametersError(`topP must be in (0, 1] (1 = off), got ${tp}`, { field: 'topP' })
  }
}

/** Index of the largest logit (the lowest index on ties, so greedy is deterministic). */
export function argmax(logits: Float32Array): number {
  let best = 0
  let bestV = logits[0]!
  for (let i = 1; i < logits.length; i++) {
    const v = logits[i]!
    if (v > bestV) {
      bestV = v
      best = i
    }
  }
  return best
}

/**
 * A seeded generator of uniform floats in [0, 1) (SplitMix32-style mixing; 2^32 period is far
 * more than one generation needs). Same seed → same sequence on every platform.
 */
export function createRng(seed: number): () => number {
  let s = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0
  return () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    z = (z ^ (z >>> 16)) >>> 0
    return z / 4294967296
  }
}

export function sample(logits: Float32Array, params: SamplingParams, rng: () => number): number {
  const T = params.temperature ?? 0
  if (T === 0) return argmax(logits)
  const V = logits.length
  let max = Number.NEGATIVE_INFINITY
  for (let i = 0; i < V; i++) if (logits[i]! > max) max = logits[i]!

  // candidates in descending logit order; top-k and top-p only ever need the head of that order,
  // so the sort is skipped when neither is set
  const k = params.topK && params.topK > 0 ? Math.min(params.topK, V) : V
  const p = params.topP ?? 1
  let idx: Int32Array
  if (k < V || p < 1) {
    idx = Int32Array.from({ length: V }, (_, i) => i)
    idx.sort((a, b) => logits[b]! - logits[a]! || a - b)
    idx = idx.subarray(0, k)
  } else {
    idx = Int32Array.from({ length: V }, (_, i) => i)
  }
  const probs = new Float64Array(idx.length)
  let sum = 0
  for (let j = 0; j < idx.length; j++) {
    const e = Math.exp((logits[idx[j]!]! - max) / T)
    probs[j] = e
    sum += e
  }
  let n = idx.length
  if (p < 1) {
    // smallest prefix (in descending order) whose mass reaches p; always at least one token
    let acc = 0
    for (let j = 0; j < idx.length; j++) {
      acc += probs[j]! / sum
      if (acc >= p) {
        n = j + 1
        break
      }
    }
    sum = 0
    for (let j = 0; j < n; j++) sum += probs[j]!
  }
  let r = rng() * sum
  for (let j = 0; j < n; j++) {
    r -= probs[j]!
    if (r < 0) return idx[j]!
  }
  return idx[n - 1]!
}
