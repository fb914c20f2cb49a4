// The constant tables of the training graph, as transformers computes them: RoPE's cos/sin and
// its rotate-half matrix (full, partial or GLM's interleaved pairs), the causal / sliding-window
// mask, ALiBi's per-head key-position biases (BLOOM in fp32, Falcon-RW rounded to bfloat16), and
// the row order that turns a fused projection whose parts interleave (BLOOM's and Falcon's
// query_key_value) into contiguous [q | k | v] blocks.
import type { ModelConfig } from '../model/config.ts'
import { projectionShape } from '../model/config.ts'
import { alibiSlopes, toBf16 } from '../model/families/bloom.ts'
import type { ModuleSpec } from '../model/families/types.ts'
import { rotaryTables } from '../model/rope.ts'

/** a masked score: far below any real one, finite so masked rows never make NaNs */
export const MASKED = -1e9

/**
 * cos, sin [T, D] and rot [D, D] with RoPE(x) = x·cos + (x·rot)·sin over the first rotaryDim dims
 * of each head (the rest pass through: cos 1, sin 0, rot 0). `local`: Gemma 3's sliding-layer base.
 */
export function ropeTables(cfg: ModelConfig, T: number, local: boolean) {
  const [D, R] = [cfg.headDim, cfg.rotaryDim]
  const { cos: c2, sin: s2 } = rotaryTables(cfg, T, D, local)
  const cos = new Float32Array(T * D).fill(1)
  const sin = new Float32Array(T * D)
  // GLM pairs dims (2i, 2i+1) (cos/sin repeat_interleave'd); the others pair (i, i + R/2)
  const il = cfg.ropeInterleaved
  const freq = (i: number) => (il ? i >> 1 : i % (R / 2))
  for (let p = 0; p < T; p++)
    for (let i = 0; i < R; i++) {
      cos[p * D + i] = c2[p * (D / 2) + freq(i)]!
      sin[p * D + i] = s2[p * (D / 2) + freq(i)]!
    }
  // rotate_half = x · rot: out[i] = −x[i + R/2], out[i + R/2] = x[i]; interleaved: out[2i] =
  // −x[2i+1], out[2i+1] = x[2i]
  const rot = new Float32Array(D * D)
  for (let i = 0; i < R / 2; i++) {
    const [a, b] = il ? [2 * i, 2 * i + 1] : [i, i + R / 2]
    rot[b * D + a] = -1
    rot[a * D + b] = 1
  }
  return { cos, sin, rot }
}

/** [T, T]: query i sees key j when j ≤ i and, in a sliding layer, i − j < window (transformers' mask). */
export function attentionMask(T: number, window: number | null): Float32Array {
  const mask = new Float32Array(T * T)
  for (let i = 0; i < T; i++)
    for (let j = 0; j < T; j++) if (j > i || (window !== null && i - j >= window)) mask[i * T + j] = MASKED
  return mask
}

/**
 * [heads, T]: ALiBi's slope_h · key position j, added to head h's scores. BLOOM computes it in
 * fp32; Falcon-RW rounds the slope and then the product to bfloat16 (its build_alibi_tensor).
 * Right padding keeps every real key at its index, so positions are plain indices.
 */
export function alibiBias(cfg: ModelConfig, T: number): Float32Array {
  const slopes = alibiSlopes(cfg.numHeads)
  const out = new Float32Array(cfg.numHeads * T)
  for (let h = 0; h < cfg.numHeads; h++)
    for (let j = 0; j < T; j++)
      out[h * T + j] =
        cfg.alibiStyle === 'falcon' ? toBf16(toBf16(slopes[h]!) * j) : Math.fround(slopes[h]! * j)
  return out
}

/**
 * The module's rows in part order ([all of q, all of k, all of v]) when its parts interleave, or
 * null when they already are contiguous blocks in that order (Phi-3, GLM); undefined when the
 * parts do not cover the rows exactly once (then the graph cannot reorder them).
 */
export function partOrder(cfg: ModelConfig, m: ModuleSpec): number[] | null | undefined {
  const order = m.parts.flatMap((p) =>
    Array.from({ length: projectionShape(cfg, p.proj)[1] }, (_, i) => p.rowOf(i))
  )
  const seen = new Set(order)
  if (order.length !== m.rows || seen.size !== m.rows || order.some((r) => r < 0 || r >= m.rows))
    return undefined
  return order.every((r, i) => r === i) ? null : order
}
