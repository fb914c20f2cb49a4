// How a model's tensors are laid out inside the built graph. ORT's CPU GroupQueryAttention only
// accepts head sizes that are multiples of 16, so a head of size D is stored padded to Dp with
// zeros. The padding keeps rotate-half RoPE exact: real dim j < D/2 sits at j and its partner
// j + D/2 sits at Dp/2 + j, so the kernel's pairs (i, i + Dp/2) are the model's pairs, and the
// padded dims stay zero through RoPE, attention (scale uses the real D) and o_proj.
import { type ModelConfig, projectionShape } from './config.ts'

/** The padded index (within a head) of ALiBi's extra q/k dimension: the first free slot (no rotary). */
export const alibiSlot = (headDim: number) => headDim / 2

export const ATTENTION_TARGETS = ['q_proj', 'k_proj', 'v_proj'] as const

export interface ModelLayout {
  config: ModelConfig
  /** the real head size */
  headDim: number
  /** the head size as stored in the graph and the KV cache (multiple of 16) */
  paddedHeadDim: number
  /** maps a real feature index of a q/k/v output (or o_proj input) to its padded index */
  padFeature(i: number): number
  /** [in, out] of a projection as the graph sees it (q/k/v out and o_proj in padded) */
  graphShape(target: string): [number, number]
  /** [in, out] of a projection as the checkpoint and PEFT see it */
  modelShape(target: string): [number, number]
}

export function modelLayout(config: ModelConfig): ModelLayout {
  const D = config.headDim
  // ALiBi rides in one extra q/k dimension (graph/decoder.ts), so it needs a free padded slot
  const Dp = Math.ceil((D + (config.positions === 'alibi' ? 1 : 0)) / 16) * 16
  // The kernel rotates pairs (i, i + Dp/2) by frequency i. Each model pair lands on such a pair:
  // rotate-half pairs (j, j + R/2), or interleaved ones (2i, 2i + 1) (GLM); dims past the rotary
  // part R (partial rotary) land on pairs whose table entries are the identity (cos 1, sin 0).
  const R = config.rotaryDim
  const free = Dp / 2 - R / 2
  const within = (j: number): number => {
    if (j < R) {
      if (config.ropeInterleaved) return j % 2 === 0 ? j / 2 : Dp / 2 + (j - 1) / 2
      return j < R / 2 ? j : Dp / 2 + (j - R / 2)
    }
    const m = j - R
    return m < free ? R / 2 + m : Dp / 2 + R / 2 + (m - free)
  }
  const padFeature =
    Dp === D && R === D && !config.ropeInterleaved
      ? (i: number) => i
      : (i: number) => {
          const h = Math.floor(i / D)
          return h * Dp + within(i - h * D)
        }
  return {
    config,
    headDim: D,
    paddedHeadDim: Dp,
    padFeature,
    modelShape: (t) => projectionShape(config, t),
    graphShape: (t) => {
      const [i, o] = projectionShape(config, t)
      const scale = Dp / D
      if (t === 'q_proj' || t === 'k_proj' || t === 'v_proj') return [i, o * scale]
      if (t === 'o_proj') return [i * scale, o]
      return [i, o]
    }
  }
}

/** True when a projection's output features are head-padded. */
export function paddedOut(target: string): boolean {
  return target === 'q_proj' || target === 'k_proj' || target === 'v_proj'
}

/** True when a projection's input features are head-padded. */
export function paddedIn(target: string): boolean {
  return target === 'o_proj'
}
