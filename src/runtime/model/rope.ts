// Rotary position embedding tables, following Hugging Face's `rope_init_fn`s (default, linear,
// llama3, longrope). Rounded to fp32 where transformers computes in fp32 (inverse frequencies, position ×
// frequency), so angles at long positions match transformers rather than exact math (the
// difference reaches ~1e-3 rad by position 10k). Fed to the graph as inputs (not initializers) so
// the cached graph does not depend on the max sequence length.
import { type ModelConfig, ModelConfigError } from './config.ts'

/** inverse frequencies, one per rotary pair (headDim / 2) */
export function inverseFrequencies(cfg: ModelConfig, local = false, positions = 0): Float64Array {
  // partial rotary (GLM): frequencies over the rotary dims only, as transformers' dim = head_dim · factor
  const D = cfg.rotaryDim
  const inv = new Float64Array(D / 2)
  // the sliding layers' own base (Gemma 3) is never scaled (the family refuses that)
  const theta = local && cfg.ropeLocalTheta !== null ? cfg.ropeLocalTheta : cfg.ropeTheta
  for (let i = 0; i < D / 2; i++) inv[i] = Math.fround(1 / Math.fround(theta ** ((2 * i) / D)))
  const s = local ? null : cfg.ropeScaling
  if (s === null) return inv
  if (s.type === 'longrope') {
    // transformers uses the long factors once a forward pass reaches past the original context;
    // a session's KV cache keeps one rotation, so its capacity decides (vLLM: max_model_len)
    const ext = positions > s.originalMaxPositionEmbeddings ? s.longFactor : s.shortFactor
    if (ext.length !== D / 2) {
      throw new ModelConfigError(
        `config.json: longrope ${ext === s.longFactor ? 'long' : 'short'}_factor has ${ext.length} entries; the rotary dims need ${D / 2}`,
        { field: 'rope_scaling', value: ext.length }
      )
    }
    for (let i = 0; i < D / 2; i++)
      inv[i] = Math.fround(1 / Math.fround(ext[i]! * Math.fround(theta ** Math.fround((2 * i) / D))))
    return inv
  }
  if (s.type === 'linear') {
    for (let i = 0; i < inv.length; i++) inv[i] = Math.fround(inv[i]! / s.factor)
    return inv
  }
  // llama3: long wavelengths are slowed by `factor`, short ones kept, the band between smoothed
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor
  for (let i = 0; i < inv.length; i++) {
    const f = inv[i]!
    const wavelen = (2 * Math.PI) / f
    if (wavelen > lowWavelen) inv[i] = Math.fround(f / s.factor)
    else if (wavelen >= highWavelen) {
      const smooth =
        (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
      inv[i] = Math.fround((1 - smooth) * (f / s.factor) + smooth * f)
    }
  }
  return inv
}

/**
 * cos/sin tables of shape [positions, paddedHeadDim / 2] for GroupQueryAttention's rotate-half
 * rotary; entries past the real headDim / 2 rotate only zero padding (cos 1, sin 0).
 */
export function rotaryTables(
  cfg: ModelConfig,
  positions: number,
  paddedHeadDim: number,
  /** the tables of the sliding layers' RoPE base (cfg.ropeLocalTheta) */
  local = false
): { cos: Float32Array; sin: Float32Array } {
  const inv = inverseFrequencies(cfg, local, positions)
  // longrope scales cos and sin of the rotary dims (transformers' attention_scaling)
  const m = !local && cfg.ropeScaling?.type === 'longrope' ? cfg.ropeScaling.attentionFactor : 1
  const w = paddedHeadDim / 2
  const cos = new Float32Array(positions * w)
  const sin = new Float32Array(positions * w)
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < w; i++) {
      if (i < inv.length) {
        const a = Math.fround(p * inv[i]!)
        cos[p * w + i] = Math.fround(Math.cos(a)) * m
        sin[p * w + i] = Math.fround(Math.sin(a)) * m
      } else {
        cos[p * w + i] = 1
      }
    }
  }
  return { cos, sin }
}
