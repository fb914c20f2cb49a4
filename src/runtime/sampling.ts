// Next-token sampling: greedy when temperature is 0 or absent, else temperature → top-k → top-p
// (nucleus) → one draw from the seeded generator. The same seed and logits give the same token on
// every node (the draw order and the float math are fixed here, not left to a library).
import { InvalidParametersError } from '../common/errors.ts'
import { messageOf, parseWith, z } from '../common/schema.ts'

/**
 * The sampling fields of GenerationParams (docs/INTERFACES.md), with the one range each has on
 * every path (the wire, the engine, `openlora generate`). Temperature stops at 10: beyond ~2 the
 * draw is close to uniform already, and the wire has refused more since v1; topK's 100,000 and
 * topP's (0, 1] are the bounds a v1 node accepts, so no request valid here is refused by one.
 */
export const SamplingParamsSchema = z.object({
  temperature: z.number().min(0).max(10).describe('a number in 0..10 (0 = greedy)').optional(),
  topK: z.int().min(0).max(100_000).describe('an integer in 0..100000 (0 = off)').optional(),
  topP: z.number().gt(0).max(1).describe('a number in (0, 1] (1 = off)').optional()
})
export type SamplingParams = z.output<typeof SamplingParamsSchema>

export function checkSamplingParams(p: SamplingParams): void {
  parseWith(SamplingParamsSchema, p, {
    error: (i) => new InvalidParametersError(messageOf(i), { field: i.field, value: i.value })
  })
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

/** The k-th largest value (1-based) of `values`, by quickselect on a copy: O(n), no full sort. */
function kthLargest(values: Float32Array, k: number): number {
  const a = Float32Array.from(values)
  let lo = 0
  let hi = a.length - 1
  const want = k - 1
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1]!
    let i = lo
    let j = hi
    while (i <= j) {
      while (a[i]! > pivot) i++
      while (a[j]! < pivot) j--
      if (i <= j) {
        const t = a[i]!
        a[i] = a[j]!
        a[j] = t
        i++
        j--
      }
    }
    if (want <= j) hi = j
    else if (want >= i) lo = i
    else break
  }
  return a[want]!
}

const F32 = new Float32Array(1)
const U32 = new Uint32Array(F32.buffer)
/** A uint32 that orders like the float32 value (larger float → larger key). */
function orderKey(v: number): number {
  F32[0] = v
  const u = U32[0]!
  return (u & 0x80000000 ? ~u : u | 0x80000000) >>> 0
}

/**
 * Sorts token ids by logit, descending, ties by lower id. Packs (logit order, id) into one float64
 * per token so the engine's native numeric sort does the work (a comparator sort of a 49k
 * vocabulary took ~35 ms); ids must be < 2^21, larger vocabularies use the comparator.
 */
function sortByLogitDesc(ids: Int32Array, logits: Float32Array): Int32Array {
  if (logits.length > 1 << 21) return ids.sort((a, b) => logits[b]! - logits[a]! || a - b)
  const keys = new Float64Array(ids.length)
  for (let j = 0; j < ids.length; j++) {
    const i = ids[j]!
    keys[j] = (0xffffffff - orderKey(logits[i]!)) * 2 ** 21 + i
  }
  keys.sort()
  for (let j = 0; j < ids.length; j++) ids[j] = keys[j]! % 2 ** 21
  return ids
}

export function sample(logits: Float32Array, params: SamplingParams, rng: () => number): number {
  const T = params.temperature ?? 0
  if (T === 0) return argmax(logits)
  const V = logits.length
  let max = Number.NEGATIVE_INFINITY
  for (let i = 0; i < V; i++) if (logits[i]! > max) max = logits[i]!
  const k = params.topK && params.topK > 0 ? Math.min(params.topK, V) : V
  const p = params.topP ?? 1

  // candidates: the top k (ties at the k-th value broken by the lower id), found by quickselect
  let cand: Int32Array
  if (k < V) {
    const kth = kthLargest(logits, k)
    cand = new Int32Array(k)
    let n = 0
    for (let i = 0; i < V && n < k; i++) if (logits[i]! > kth) cand[n++] = i
    for (let i = 0; i < V && n < k; i++) if (logits[i]! === kth) cand[n++] = i
  } else {
    cand = new Int32Array(V)
    for (let i = 0; i < V; i++) cand[i] = i
  }
  if (p < 1) {
    let sum = 0
    for (let j = 0; j < cand.length; j++) sum += Math.exp((logits[cand[j]!]! - max) / T)
    // A token in the nucleus has probability > (1 − p) / |candidates| (the tokens no more likely
    // than it hold more than 1 − p of the mass, and there are at most |candidates| of them), so
    // only those need sorting: usually a few hundred, not the vocabulary.
    const floor = ((1 - p) / cand.length) * sum
    let kept = 0
    for (let j = 0; j < cand.length; j++) {
      if (Math.exp((logits[cand[j]!]! - max) / T) > floor) cand[kept++] = cand[j]!
    }
    if (kept === 0) return argmax(logits)
    cand = sortByLogitDesc(cand.subarray(0, kept), logits)
    // smallest prefix in descending order whose mass reaches p (of the top-k mass); at least one
    let acc = 0
    let n = cand.length
    for (let j = 0; j < cand.length; j++) {
      acc += Math.exp((logits[cand[j]!]! - max) / T) / sum
      if (acc >= p) {
        n = j + 1
        break
      }
    }
    cand = cand.subarray(0, n)
  }
  // the draw walks the chosen tokens in id order (a fixed rule, so a seed gives the same token on
  // every node)
  cand.sort()
  const w = new Float64Array(cand.length)
  let sum = 0
  for (let j = 0; j < cand.length; j++) sum += w[j] = Math.exp((logits[cand[j]!]! - max) / T)
  let r = rng() * sum
  for (let j = 0; j < cand.length; j++) {
    r -= w[j]!
    if (r < 0) return cand[j]!
  }
  return cand[cand.length - 1]!
}
