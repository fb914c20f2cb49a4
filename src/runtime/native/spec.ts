// What the native decode engine (decoder.cc) is told about a built model: which configs it
// computes (nativeDecodeSupport) and where each weight sits (nativePlan, read from the build's
// tensors.json, model/manifest.ts). The plan is plain data (structured-clonable), so the loader
// makes and checks it on the main thread and the session worker only adds its shared buffers.
import { join } from 'node:path'
import { DT } from '../graph/proto.ts'
import { familyOf, type ModelConfig } from '../model/config.ts'
import { modelLayout } from '../model/layout.ts'
import { type ManifestTensor, readManifest, type TensorManifest } from '../model/manifest.ts'
import type { WeightFormat } from '../weight-format.ts'
import { NativeUnavailableError } from './compile.ts'

/** a byte offset into weights.bin, or inline data (the addon copies it) */
export type TensorRef = number | Float32Array | Uint8Array

export interface NativeLinear {
  K: number
  N: number
  /** true: [N, K] row-major (MatMulNBits, Gemm transB); false: [K, N] (fp32 MatMul weight_t) */
  rows: boolean
  weight: TensorRef
  scales: TensorRef | -1
  zeros: TensorRef | -1
  /** int8/int4 block size; 0 for fp32 */
  block: number
}

export interface NativeLayer {
  inputNorm: TensorRef
  mlpNorm: TensorRef
  qkv: NativeLinear
  qkvBias: TensorRef | -1
  o: NativeLinear
  oBias: TensorRef | -1
  /** N = 2 · intermediate, columns [gate | up] */
  gateUp: NativeLinear
  gateUpBias: TensorRef | -1
  down: NativeLinear
  downBias: TensorRef | -1
}

/** The spec without the runner's shared buffers (those join it in the worker: NativeDecoder.open). */
export interface NativePlan {
  weightsPath: string
  format: 0 | 1 | 2
  threads: number
  hidden: number
  heads: number
  kvHeads: number
  /** the graph's padded head size (layout.ts) */
  headDim: number
  intermediate: number
  vocab: number
  layers: number
  eps: number
  attnScale: number
  /** 0 = no sliding window */
  window: number
  embed: TensorRef
  finalNorm: TensorRef
  lmHead: NativeLinear
  layer: NativeLayer[]
}

export const FORMAT_CODE: Record<WeightFormat, 0 | 1 | 2> = { fp32: 0, int8: 1, int4: 2 }

/**
 * null when the native engine computes this model exactly as the graph does; otherwise why not,
 * naming the config feature. It implements the Llama block only (Llama, Mistral, Qwen2: RMS
 * norms, SiLU-gated MLP, rotate-half RoPE over the whole head, q/k/v biases allowed).
 */
export function nativeDecodeSupport(cfg: ModelConfig, format: WeightFormat): string | null {
  if (!(format in FORMAT_CODE)) return `weight format ${format} (native: fp32, int8, int4)`
  if (cfg.positions !== 'rope') return `positions "${cfg.positions}" (native: rope only)`
  if (cfg.ropeInterleaved) return 'interleaved rotary pairs (ropeInterleaved)'
  if (cfg.rotaryDim !== cfg.headDim)
    return `partial rotary (rotaryDim ${cfg.rotaryDim} of headDim ${cfg.headDim})`
  if (cfg.ropeLocalTheta !== null) return 'a separate RoPE base for sliding layers (ropeLocalTheta)'
  if (cfg.norm !== 'rms') return `norm "${cfg.norm}" (native: rms only)`
  if (cfg.activation !== 'silu') return `activation "${cfg.activation}" (native: silu only)`
  if (cfg.mlp !== 'gated') return `mlp "${cfg.mlp}" (native: gated only)`
  if (cfg.parallelBlock) return 'parallel attention and MLP blocks (parallelBlock)'
  if (cfg.qkNorm) return 'per-head q/k norms (qkNorm)'
  if (cfg.sandwichNorms) return 'sandwich norms on the attention/MLP outputs (sandwichNorms)'
  if (cfg.attnSoftcap !== null) return 'attention logit soft-capping (attnSoftcap)'
  if (cfg.finalSoftcap !== null) return 'final logit soft-capping (finalSoftcap)'
  if (cfg.embedScale !== null) return 'scaled embeddings (embedScale)'
  const family = familyOf(cfg)
  if (family.embedNorm) return `a norm after the embedding (family ${family.name}: embedNorm)`
  const windows = new Set(cfg.layerWindows.map((w) => w ?? 0))
  if (windows.size > 1) return 'layers with different sliding windows (layerWindows)'
  for (let l = 0; l < cfg.numLayers; l++) {
    const lw = family.layer(cfg, l)
    if (lw.postAttnNorm || lw.postMlpNorm) return `sandwich norms (family ${family.name}, layer ${l})`
    if (lw.qNorm || lw.kNorm) return `per-head q/k norms (family ${family.name}, layer ${l})`
  }
  return null
}

/** Reads tensors from a manifest, checking each is what the engine will take it for. */
function tensors(m: TensorManifest, dir: string) {
  const bad = (name: string, why: string) =>
    new NativeUnavailableError(`built model ${dir}: tensor "${name}" ${why}`, { tensor: name })
  const ref = (name: string, type: number, dims: number[]): TensorRef => {
    const t: ManifestTensor | undefined = m.tensors[name]
    if (!t) throw bad(name, 'is not in tensors.json')
    if (t.type !== type) throw bad(name, `has ONNX type ${t.type}; expected ${type}`)
    if (dims.length !== t.dims.length || dims.some((d, i) => d >= 0 && d !== t.dims[i]))
      throw bad(
        name,
        `has dims [${t.dims.join(', ')}]; expected [${dims.map((d) => (d < 0 ? '?' : d)).join(', ')}]`
      )
    if ('offset' in t) return t.offset
    return type === DT.FLOAT ? Float32Array.from(t.values) : Uint8Array.from(t.values)
  }
  const optional = (name: string, n: number): TensorRef | -1 =>
    m.tensors[name] ? ref(name, DT.FLOAT, [n]) : -1
  const dims = (name: string) => m.tensors[name]?.dims ?? []
  return { ref, optional, dims }
}

/**
 * The plan of a built model (model.onnx's directory): every weight the decode step reads, by its
 * graph initializer name (graph/decoder.ts, graph/linear.ts quantizedLinear).
 */
export async function nativePlan(
  builtDir: string,
  cfg: ModelConfig,
  format: WeightFormat,
  threads: number
): Promise<NativePlan> {
  const why = nativeDecodeSupport(cfg, format)
  if (why !== null)
    throw new NativeUnavailableError(`the native decoder does not compute ${why}`, { reason: why })
  const m = await readManifest(builtDir)
  const t = tensors(m, builtDir)
  const family = familyOf(cfg)
  const Dp = modelLayout(cfg).paddedHeadDim
  const H = cfg.hiddenSize
  const I = cfg.intermediateSize
  const V = cfg.vocabSize
  const qOut = cfg.numHeads * Dp
  const kvOut = cfg.numKvHeads * Dp
  const linear = (name: string, K: number, N: number): NativeLinear => {
    if (format === 'fp32')
      return {
        K,
        N,
        rows: false,
        weight: t.ref(`${name}.weight_t`, DT.FLOAT, [K, N]),
        scales: -1,
        zeros: -1,
        block: 0
      }
    const q = format === 'int8' ? `${name}.q8` : `${name}.q4`
    const [, kb, per] = t.dims(q)
    const block = format === 'int8' ? (per ?? 0) : (per ?? 0) * 2
    if (!kb || !block || kb * block < K || (kb - 1) * block >= K)
      throw new NativeUnavailableError(
        `built model ${builtDir}: "${q}" is not a [${N}, blocks, block] code tensor`,
        {
          tensor: q
        }
      )
    return {
      K,
      N,
      rows: true,
      weight: t.ref(q, DT.UINT8, [N, kb, per!]),
      scales: t.ref(`${name}.scales`, DT.FLOAT, [N, kb]),
      // 4-bit zero points, two a byte, per row: ceil(kb / 2) bytes a row (MatMulNBits)
      zeros: format === 'int4' ? t.ref(`${name}.zp4`, DT.UINT8, [N * Math.ceil(kb / 2)]) : -1,
      block
    }
  }
  const headName = cfg.tieWordEmbeddings ? family.embedName : family.lmHead
  const lmHead: NativeLinear =
    format === 'fp32'
      ? { K: H, N: V, rows: true, weight: t.ref(headName, DT.FLOAT, [V, H]), scales: -1, zeros: -1, block: 0 }
      : linear('lm_head', H, V)
  const layer: NativeLayer[] = []
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`
    const lw = family.layer(cfg, l)
    layer.push({
      inputNorm: t.ref(lw.inputNorm, DT.FLOAT, [H]),
      mlpNorm: t.ref(lw.mlpNorm, DT.FLOAT, [H]),
      qkv: linear(`${p}.qkv`, H, qOut + 2 * kvOut),
      qkvBias: t.optional(`${p}.qkv.bias`, qOut + 2 * kvOut),
      o: linear(`${p}.o`, qOut, H),
      oBias: t.optional(`${p}.o.bias`, H),
      gateUp: linear(`${p}.gate_up`, H, 2 * I),
      gateUpBias: t.optional(`${p}.gate_up.bias`, 2 * I),
      down: linear(`${p}.down`, I, H),
      downBias: t.optional(`${p}.down.bias`, H)
    })
  }
  return {
    weightsPath: join(builtDir, 'weights.bin'),
    format: FORMAT_CODE[format],
    threads,
    hidden: H,
    heads: cfg.numHeads,
    kvHeads: cfg.numKvHeads,
    headDim: Dp,
    intermediate: I,
    vocab: V,
    layers: cfg.numLayers,
    eps: cfg.rmsNormEps,
    attnScale: cfg.attentionScale,
    window: cfg.layerWindows[0] ?? 0,
    embed: t.ref(family.embedName, DT.FLOAT, [V, H]),
    finalNorm: t.ref(family.finalNorm, DT.FLOAT, [H]),
    lmHead,
    layer
  }
}
