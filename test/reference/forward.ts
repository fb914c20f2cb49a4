// A plain TypeScript forward pass of the Llama family, written line by line from Hugging Face's
// modeling_llama.py / modeling_qwen2.py / modeling_mistral.py (sliding window), to check the ONNX graph against. It favours being
// obviously right over being fast: float64 loops, no cache, the whole sequence every call.
// Where HF rounds to fp32 on purpose (RoPE inverse frequencies and angles are computed in fp32),
// this does too, so positions far from 0 agree with transformers and not just with math.

import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { PeftAdapter } from '../../src/runtime/adapters/peft.ts'
import type { Tensor, TensorMap } from '../../src/runtime/formats/safetensors.ts'
import { loadCheckpointWeights } from '../../src/runtime/formats/safetensors.ts'
import { type ModelConfig, parseModelConfig } from '../../src/runtime/model/config.ts'

export interface ReferenceModel {
  config: ModelConfig
  weights: TensorMap
}

export async function loadReference(dir: string): Promise<ReferenceModel> {
  const gen = join(dir, 'generation_config.json')
  const config = parseModelConfig(
    JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    existsSync(gen) ? JSON.parse(readFileSync(gen, 'utf8')) : undefined
  )
  return { config, weights: await loadCheckpointWeights(dir) }
}

function get(w: TensorMap, name: string): Tensor {
  const t = w.get(name)
  if (!t) throw new Error(`reference: weight "${name}" is missing`)
  return t
}

/** y = x Wᵀ (+ b), W stored [out, in] as nn.Linear does. */
export function linear(x: Float64Array, W: Tensor, b?: Tensor): Float64Array {
  const [out, inF] = W.shape as [number, number]
  if (x.length !== inF) throw new Error(`reference: linear input ${x.length} != ${inF}`)
  const y = new Float64Array(out)
  for (let o = 0; o < out; o++) {
    let s = 0
    const row = o * inF
    for (let i = 0; i < inF; i++) s += W.data[row + i]! * x[i]!
    y[o] = s + (b ? b.data[o]! : 0)
  }
  return y
}

/** LlamaRMSNorm: weight * x / sqrt(mean(x²) + eps). */
export function rmsNorm(x: Float64Array, weight: Tensor, eps: number): Float64Array {
  let ss = 0
  for (const v of x) ss += v * v
  const inv = 1 / Math.sqrt(ss / x.length + eps)
  const y = new Float64Array(x.length)
  for (let i = 0; i < x.length; i++) y[i] = weight.data[i]! * (x[i]! * inv)
  return y
}

/** inv_freq of LlamaRotaryEmbedding, including the 'linear' and 'llama3' rope types. */
export function ropeInvFreq(c: ModelConfig): Float64Array {
  const d = c.headDim
  const inv = new Float64Array(d / 2)
  for (let i = 0; i < d / 2; i++) inv[i] = Math.fround(1 / Math.fround(c.ropeTheta ** ((2 * i) / d)))
  const rs = c.ropeScaling
  if (rs?.type === 'linear') {
    for (let i = 0; i < inv.length; i++) inv[i] = Math.fround(inv[i]! / rs.factor)
  } else if (rs?.type === 'llama3') {
    // _compute_llama3_parameters
    const lowWavelen = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor
    const highWavelen = rs.originalMaxPositionEmbeddings / rs.highFreqFactor
    for (let i = 0; i < inv.length; i++) {
      const f = inv[i]!
      const wavelen = (2 * Math.PI) / f
      let out = wavelen > lowWavelen ? f / rs.factor : f
      const smooth =
        (rs.originalMaxPositionEmbeddings / wavelen - rs.lowFreqFactor) /
        (rs.highFreqFactor - rs.lowFreqFactor)
      const isMedium = !(wavelen < highWavelen) && !(wavelen > lowWavelen)
      if (isMedium) out = ((1 - smooth) * out) / rs.factor + smooth * out
      inv[i] = Math.fround(out)
    }
  }
  return inv
}

/** apply_rotary_pos_emb on one head vector: x*cos + rotate_half(x)*sin, cos = cat(cos(f), cos(f)). */
export function applyRope(x: Float64Array, pos: number, invFreq: Float64Array): Float64Array {
  const half = invFreq.length
  const y = new Float64Array(x.length)
  for (let i = 0; i < half; i++) {
    const angle = Math.fround(pos * invFreq[i]!)
    const cos = Math.fround(Math.cos(angle))
    const sin = Math.fround(Math.sin(angle))
    // rotate_half(x) = cat(-x[half:], x[:half])
    y[i] = x[i]! * cos - x[i + half]! * sin
    y[i + half] = x[i + half]! * cos + x[i]! * sin
  }
  return y
}

const silu = (v: number): number => v / (1 + Math.exp(-v))

/**
 * Logits for every position of `ids` (row t = the distribution of token t+1), as
 * LlamaForCausalLM / Qwen2ForCausalLM compute them with a causal mask.
 */
export function referenceForward(model: ReferenceModel, ids: number[]): Float32Array[] {
  const { config: c, weights: w } = model
  const T = ids.length
  const d = c.headDim
  const nRep = c.numHeads / c.numKvHeads
  const invFreq = ropeInvFreq(c)
  const emb = get(w, 'model.embed_tokens.weight')
  let h: Float64Array[] = ids.map((id) => {
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize)
      throw new Error(`reference: token id ${id} out of range`)
    return Float64Array.from(emb.data.subarray(id * c.hiddenSize, (id + 1) * c.hiddenSize))
  })
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`
    const window = c.layerWindows[l] ?? null
    const bias = (n: string): Tensor | undefined =>
      c.attentionBias ? get(w, `${p}self_attn.${n}.bias`) : undefined
    const x = h.map((v) => rmsNorm(v, get(w, p + 'input_layernorm.weight'), c.rmsNormEps))
    const q = x.map((v) => linear(v, get(w, p + 'self_attn.q_proj.weight'), bias('q_proj')))
    const k = x.map((v) => linear(v, get(w, p + 'self_attn.k_proj.weight'), bias('k_proj')))
    const v = x.map((v) => linear(v, get(w, p + 'self_attn.v_proj.weight'), bias('v_proj')))
    // split into heads and rotate q, k by their position
    const qh = q.map((row, t) =>
      [...Array(c.numHeads).keys()].map((hh) => applyRope(row.subarray(hh * d, (hh + 1) * d), t, invFreq))
    )
    const kh = k.map((row, t) =>
      [...Array(c.numKvHeads).keys()].map((hh) => applyRope(row.subarray(hh * d, (hh + 1) * d), t, invFreq))
    )
    const attn: Float64Array[] = []
    for (let t = 0; t < T; t++) {
      const out = new Float64Array(c.numHeads * d)
      for (let hh = 0; hh < c.numHeads; hh++) {
        const kv = Math.floor(hh / nRep) // repeat_kv: query head hh reads kv head hh // n_rep
        const scores = new Float64Array(t + 1).fill(Number.NEGATIVE_INFINITY) // causal: 0..t only
        // a sliding window of W keys (the query's own included), as transformers' masks say
        const first = window === null ? 0 : Math.max(0, t - window + 1)
        for (let s = first; s <= t; s++) {
          let dot = 0
          for (let i = 0; i < d; i++) dot += qh[t]![hh]![i]! * kh[s]![kv]![i]!
          scores[s] = dot / Math.sqrt(d)
        }
        const m = Math.max(...scores)
        let z = 0
        for (let s = first; s <= t; s++) z += scores[s] = Math.exp(scores[s]! - m)
        for (let s = first; s <= t; s++) {
          const pr = scores[s]! / z
          for (let i = 0; i < d; i++) out[hh * d + i]! += pr * v[s]![kv * d + i]!
        }
      }
      attn.push(out)
    }
    h = h.map((row, t) => {
      const o = linear(attn[t]!, get(w, p + 'self_attn.o_proj.weight'))
      return row.map((val, i) => val + o[i]!)
    })
    h = h.map((row) => {
      const y = rmsNorm(row, get(w, p + 'post_attention_layernorm.weight'), c.rmsNormEps)
      const g = linear(y, get(w, p + 'mlp.gate_proj.weight'))
      const u = linear(y, get(w, p + 'mlp.up_proj.weight'))
      const down = linear(
        g.map((gv, i) => silu(gv) * u[i]!),
        get(w, p + 'mlp.down_proj.weight')
      )
      return row.map((val, i) => val + down[i]!)
    })
  }
  const head = c.tieWordEmbeddings ? emb : get(w, 'lm_head.weight')
  return h.map((row) =>
    Float32Array.from(linear(rmsNorm(row, get(w, 'model.norm.weight'), c.rmsNormEps), head))
  )
}

/** HF module path of a projection (self_attn.* or mlp.*). */
function weightName(layer: number, target: string): string {
  const group = ['gate_proj', 'up_proj', 'down_proj'].includes(target) ? 'mlp' : 'self_attn'
  return `model.layers.${layer}.${group}.${target}.weight`
}

/** A copy of the weights with the adapter merged in: W + scale · B·A (what PEFT's merge_and_unload does). */
export function mergeAdapter(weights: TensorMap, adapter: PeftAdapter): TensorMap {
  const out: TensorMap = new Map(weights)
  for (const [layer, targets] of adapter.layers) {
    for (const [target, lw] of targets) {
      const name = weightName(layer, target)
      const W = get(weights, name)
      const [outF, inF] = W.shape as [number, number]
      if (outF !== lw.outFeatures || inF !== lw.inFeatures)
        throw new Error(`reference: ${name} shape does not fit the adapter`)
      const merged = Float32Array.from(W.data)
      for (let o = 0; o < outF; o++) {
        for (let i = 0; i < inF; i++) {
          let s = 0
          for (let r = 0; r < lw.r; r++) s += lw.B[o * lw.r + r]! * lw.A[r * inF + i]!
          merged[o * inF + i] = W.data[o * inF + i]! + lw.scale * s
        }
      }
      out.set(name, { dtype: W.dtype, shape: W.shape, data: merged })
    }
  }
  return out
}

/** Index of the largest value (greedy decoding's choice). */
export function argmax(v: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i
  return best
}
