// A Hugging Face checkpoint of any family → GGUF for llama.cpp's architecture of that family
// (gguf-arch.ts). The family file (src/runtime/model/families/) already says where every
// projection sits, fused modules included; the writer takes each projection apart by those row
// maps and lays it out as llama.cpp's loader wants it (separate q/k/v, or one attn_qkv with
// [q; k; v] rows; one ffn_up with [gate; up] rows), so no family needs its own tensor code here.
// The Llama family keeps its own writer (gguf-llama.ts), whose q/k permutation this one never needs:
// every other architecture takes rotate-half (NeoX) or interleaved RoPE as the checkpoint has it.
import { createLogger } from '../../common/log.ts'
import { GgufError, type GgufKv, GgufType } from '../formats/gguf.ts'
import { type GgufTensorIn, writeGguf } from '../formats/gguf-write.ts'
import { loadCheckpointWeights, type TensorMap } from '../formats/safetensors.ts'
import { familyOf, type ModelConfig, type Projection, projectionShape } from '../model/config.ts'
import type { LayerWeights } from '../model/families/types.ts'
import { type LlamaCppArch, llamaCppArch } from './gguf-arch.ts'
import {
  exportCheckpointToGguf,
  type GgufExportOptions,
  loadModelConfigFromDir,
  tokenizerMetadata
} from './gguf-llama.ts'

const log = createLogger('gguf-export')

interface Part {
  w: Float32Array
  b: Float32Array | null
}

function tensorOf(weights: TensorMap, name: string): Float32Array {
  const t = weights.get(name)
  if (t === undefined) throw new GgufError(`the checkpoint has no tensor ${name}`)
  return t.data
}

/** Each logical projection of one layer, cut out of its (possibly fused) checkpoint module. */
export function splitProjections(
  cfg: ModelConfig,
  lw: LayerWeights,
  weights: TensorMap
): Map<Projection, Part> {
  const out = new Map<Projection, Part>()
  for (const m of lw.modules) {
    const W = tensorOf(weights, `${m.path}.weight`)
    const B = m.bias ? tensorOf(weights, `${m.path}.bias`) : null
    if (W.length !== m.rows * m.cols)
      throw new GgufError(`${m.path}.weight holds ${W.length} values; expected ${m.rows}x${m.cols}`)
    for (const p of m.parts) {
      const n = projectionShape(cfg, p.proj)[1]
      const w = new Float32Array(n * m.cols)
      const b = B === null ? null : new Float32Array(n)
      for (let i = 0; i < n; i++) {
        const r = p.rowOf(i)
        w.set(W.subarray(r * m.cols, (r + 1) * m.cols), i * m.cols)
        if (b !== null) b[i] = B![r]
      }
      out.set(p.proj, { w, b })
    }
  }
  return out
}

function concatRows(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

function scaled(x: Float32Array, k: number): Float32Array {
  return k === 1 ? x : x.map((v) => v * k)
}

/** The GGUF tensors of one decoder layer. */
function layerTensors(
  cfg: ModelConfig,
  spec: LlamaCppArch,
  l: number,
  lw: LayerWeights,
  weights: TensorMap,
  dtype: GgufExportOptions['dtype']
): GgufTensorIn[] {
  const out: GgufTensorIn[] = []
  const blk = `blk.${l}`
  const push = (name: string, rows: number, data: Float32Array, bias: Float32Array | null): void => {
    const cols = data.length / rows
    out.push({ name: `${name}.weight`, shape: [rows, cols], dtype: dtype ?? 'F32', data })
    if (bias !== null) out.push({ name: `${name}.bias`, shape: [rows], dtype: 'F32', data: bias })
  }
  const norm = (hf: string | undefined, name: string, scale = 1): void => {
    if (hf === undefined) return
    let w = tensorOf(weights, hf)
    // Gemma's (1 + w) RMSNorm: llama.cpp multiplies by the weight as stored (convert adds 1)
    if (cfg.norm === 'rms1p') w = w.map((v) => v + 1)
    out.push({ name: `${blk}.${name}.weight`, shape: [w.length], dtype: 'F32', data: scaled(w, scale) })
    if (spec.layerNorm) {
      const b = tensorOf(weights, hf.replace(/\.weight$/, '.bias'))
      out.push({ name: `${blk}.${name}.bias`, shape: [b.length], dtype: 'F32', data: b })
    }
  }
  const p = splitProjections(cfg, lw, weights)
  const get = (proj: Projection): Part => {
    const x = p.get(proj)
    if (x === undefined) throw new GgufError(`layer ${l} has no ${proj}`)
    return x
  }
  // the query scale goes into q_proj unless a q_norm follows it (which would normalise it away)
  const qw = cfg.qkNorm ? 1 : spec.qScale
  const q = { w: scaled(get('q_proj').w, qw), b: get('q_proj').b && scaled(get('q_proj').b!, qw) }
  const [k, v] = [get('k_proj'), get('v_proj')]
  const rows = (proj: Projection) => projectionShape(cfg, proj)[1]
  if (spec.fusedQkv) {
    const bias = q.b === null ? null : concatRows([q.b, k.b!, v.b!])
    push(`${blk}.attn_qkv`, rows('q_proj') + 2 * rows('k_proj'), concatRows([q.w, k.w, v.w]), bias)
  } else {
    push(`${blk}.attn_q`, rows('q_proj'), q.w, q.b)
    push(`${blk}.attn_k`, rows('k_proj'), k.w, k.b)
    push(`${blk}.attn_v`, rows('v_proj'), v.w, v.b)
  }
  const o = get('o_proj')
  push(`${blk}.attn_output`, rows('o_proj'), o.w, o.b)
  const up = get('up_proj')
  if (cfg.mlp === 'gated') {
    const gate = get('gate_proj')
    if (spec.fusedGateUp) push(`${blk}.ffn_up`, 2 * rows('up_proj'), concatRows([gate.w, up.w]), null)
    else {
      push(`${blk}.ffn_gate`, rows('gate_proj'), gate.w, gate.b)
      push(`${blk}.ffn_up`, rows('up_proj'), up.w, up.b)
    }
  } else push(`${blk}.ffn_up`, rows('up_proj'), up.w, up.b)
  const down = get('down_proj')
  push(`${blk}.ffn_down`, rows('down_proj'), down.w, down.b)

  if (spec.arch === 'falcon') {
    // 7B: one norm feeds both branches; 40B: ln_mlp is llama.cpp's attn_norm (it feeds the MLP)
    // and ln_attn its attn_norm_2 (it feeds attention), as convert_hf_to_gguf's tensor map has it
    if (lw.inputNorm === lw.mlpNorm) norm(lw.inputNorm, 'attn_norm')
    else {
      norm(lw.mlpNorm, 'attn_norm')
      norm(lw.inputNorm, 'attn_norm_2')
    }
  } else {
    norm(lw.inputNorm, 'attn_norm')
    norm(lw.mlpNorm, 'ffn_norm')
  }
  norm(lw.postAttnNorm, 'post_attention_norm')
  norm(lw.postMlpNorm, 'post_ffw_norm')
  norm(lw.qNorm, 'attn_q_norm', cfg.qkNorm ? spec.qScale : 1)
  norm(lw.kNorm, 'attn_k_norm')
  return out
}

/** general.* and <arch>.* hyper-parameters, as convert_hf_to_gguf.py writes them. */
export function archMetadata(cfg: ModelConfig, spec: LlamaCppArch, name: string, dtype: string): GgufKv[] {
  const a = spec.arch
  const u32 = (key: string, value: number): GgufKv => ({ key: `${a}.${key}`, type: GgufType.UINT32, value })
  const f32 = (key: string, value: number): GgufKv => ({ key: `${a}.${key}`, type: GgufType.FLOAT32, value })
  const kvs: GgufKv[] = [
    { key: 'general.architecture', type: GgufType.STRING, value: a },
    { key: 'general.type', type: GgufType.STRING, value: 'model' },
    { key: 'general.name', type: GgufType.STRING, value: name },
    { key: 'general.file_type', type: GgufType.UINT32, value: dtype === 'F16' ? 1 : 0 },
    u32('context_length', cfg.maxPositionEmbeddings),
    u32('embedding_length', cfg.hiddenSize),
    u32('block_count', cfg.numLayers),
    u32('feed_forward_length', cfg.intermediateSize),
    u32('attention.head_count', cfg.numHeads),
    u32('attention.head_count_kv', cfg.numKvHeads),
    u32('attention.key_length', cfg.headDim),
    u32('attention.value_length', cfg.headDim),
    u32('vocab_size', cfg.vocabSize),
    f32(spec.layerNorm ? 'attention.layer_norm_epsilon' : 'attention.layer_norm_rms_epsilon', cfg.rmsNormEps)
  ]
  if (cfg.positions === 'rope') {
    kvs.push(f32('rope.freq_base', cfg.ropeTheta), u32('rope.dimension_count', cfg.rotaryDim))
    if (cfg.ropeScaling?.type === 'linear') {
      // gemma3: llama.cpp leaves the sliding layers unscaled (freq_scale_swa), as transformers does
      kvs.push(
        { key: `${a}.rope.scaling.type`, type: GgufType.STRING, value: 'linear' },
        f32('rope.scaling.factor', cfg.ropeScaling.factor)
      )
    }
  }
  if (a === 'phi3') {
    kvs.push(u32('rope.scaling.original_context_length', cfg.maxPositionEmbeddings))
    // phi3 reads a window of 0 as "none"; llama.cpp turns Phi's window off either way
    kvs.push(u32('attention.sliding_window', 0))
  }
  if (cfg.attnSoftcap !== null) kvs.push(f32('attn_logit_softcapping', cfg.attnSoftcap))
  if (cfg.finalSoftcap !== null) kvs.push(f32('final_logit_softcapping', cfg.finalSoftcap))
  if (a === 'gemma2' || a === 'gemma3') {
    // gemma2 slides every 2nd layer over 4096 unless told: say which layers slide, none included
    if (cfg.slidingWindow !== null || a === 'gemma2') {
      if (cfg.slidingWindow !== null) kvs.push(u32('attention.sliding_window', cfg.slidingWindow))
      kvs.push({
        // per layer, so any layer_types pattern works (llama.cpp's default is every 2nd / 6th)
        key: `${a}.attention.sliding_window_pattern`,
        type: GgufType.ARRAY,
        itemType: GgufType.BOOL,
        value: cfg.layerWindows.map((w) => w !== null)
      })
    }
    if (cfg.ropeLocalTheta !== null) kvs.push(f32('rope.freq_base_swa', cfg.ropeLocalTheta))
  }
  return kvs
}

/**
 * Writes a checkpoint of any family llama.cpp has an architecture for as one GGUF v3 file;
 * refuses (NotSupportedError, naming the config key) what llama.cpp would compute differently.
 */
export async function exportModelToGguf(
  dir: string,
  outFile: string,
  opts: GgufExportOptions = {}
): Promise<{ bytes: number; tensors: number; config: ModelConfig; arch: string; warnings: string[] }> {
  const cfg = await loadModelConfigFromDir(dir)
  if (cfg.family === 'llama') {
    const r = await exportCheckpointToGguf(dir, outFile, opts)
    return { ...r, arch: 'llama', warnings: [] }
  }
  const spec = llamaCppArch(cfg)
  for (const w of spec.warnings) log.warn(w, { arch: spec.arch })
  const dtype = opts.dtype ?? 'F32'
  const family = familyOf(cfg)
  const weights = await loadCheckpointWeights(dir)
  const top = (hf: string, name: string): GgufTensorIn => {
    const data = tensorOf(weights, hf)
    const cols = data.length / cfg.vocabSize
    return { name, shape: [cfg.vocabSize, cols], dtype, data }
  }
  const tensors: GgufTensorIn[] = [top(family.embedName, 'token_embd.weight')]
  const topNorm = (hf: string, name: string): void => {
    let w = tensorOf(weights, hf)
    if (cfg.norm === 'rms1p') w = w.map((v) => v + 1)
    tensors.push({ name: `${name}.weight`, shape: [w.length], dtype: 'F32', data: w })
    if (spec.layerNorm) {
      const b = tensorOf(weights, hf.replace(/\.weight$/, '.bias'))
      tensors.push({ name: `${name}.bias`, shape: [b.length], dtype: 'F32', data: b })
    }
  }
  if (family.embedNorm) topNorm(family.embedNorm, 'token_embd_norm')
  topNorm(family.finalNorm, 'output_norm')
  if (!cfg.tieWordEmbeddings) tensors.push(top(family.lmHead, 'output.weight'))
  for (let l = 0; l < cfg.numLayers; l++)
    tensors.push(...layerTensors(cfg, spec, l, family.layer(cfg, l), weights, dtype))
  const name = opts.name ?? cfg.nameOrPath ?? 'model'
  const metadata = [...archMetadata(cfg, spec, name, dtype), ...(await tokenizerMetadata(dir, cfg, opts.pre))]
  const { bytes } = await writeGguf(outFile, metadata, tensors, opts.onProgress)
  log.info('wrote GGUF model', { file: outFile, arch: spec.arch, bytes, tensors: tensors.length, dtype })
  return { bytes, tensors: tensors.length, config: cfg, arch: spec.arch, warnings: spec.warnings }
}
