// The training graph of the decoder families the runtime serves, Llama's shape plus what the
// others change (Qwen2's q/k/v biases, Mistral's and Gemma 2/3's sliding windows, Qwen3's and
// Gemma 3's per-head q/k norms, Gemma's (1 + w) norms, GELU-tanh gate and embedding scale, Gemma
// 2/3's and GLM-4's sandwich norms, Gemma 2's soft-capping, Phi-3's and GLM's fused modules and
// partial rotary (GLM's interleaved), BLOOM's and Falcon's LayerNorm, ALiBi, plain GELU MLP,
// parallel blocks and interleaved query_key_value): forward to the mean token cross-entropy, then the backward pass for the LoRA tensors only (the
// base weights are constants, so the tape never differentiates them). Attention is spelled out
// with MatMul/Softmax instead of the inference graph's GroupQueryAttention contrib op, because
// that op has no gradient; RoPE's rotate-half is a constant ±1 permutation matrix so its gradient
// is a MatMul too. The batch shape is fixed at build time: `--tokens` trains one padded batch
// every step.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { OpenLoraError } from '../../common/errors.ts'
import type { CheckpointReader } from '../formats/safetensors.ts'
import { DT, GraphBuilder } from '../graph/proto.ts'
import type { ModelConfig } from '../model/config.ts'
import { projectionShape } from '../model/config.ts'
import { familyOf } from '../model/families/index.ts'
import type { ModuleSpec, Projection } from '../model/families/types.ts'
import type { WeightFormat } from '../weight-format.ts'
import { type FrozenWeight, Tape, type Val } from './autodiff.ts'
import { alibiBias, attentionMask, partOrder, ropeTables } from './positions.ts'
import { QUANTIZED_OPSET, quantizedBase } from './quantized-base.ts'

/**
 * at most this many floats per block of logits (64 MB): smaller blocks hold less, but each block's
 * head GEMMs repack the whole [vocab, hidden] weight (no prepacking), which 16 MB blocks paid for
 */
const LOGIT_FLOATS = 1 << 24

export class TrainingUnsupportedError extends OpenLoraError<'TRAINING_UNSUPPORTED'> {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('TRAINING_UNSUPPORTED', message, details)
  }
}

/** One adapted Linear (a checkpoint module, fused ones whole): PEFT's module path and its LoRA shapes. */
export interface LoraModule {
  layer: number
  /** the module's name as PEFT's target_modules says it: q_proj, …, or Phi-3's qkv_proj / gate_up_proj */
  target: string
  /** e.g. model.layers.0.self_attn.q_proj */
  path: string
  r: number
  inFeatures: number
  outFeatures: number
  /** alpha / r, or alpha / sqrt(r) with rsLoRA */
  scale: number
}

export interface TrainingGraph {
  /** model.onnx (its weights.bin next to it) */
  modelPath: string
  /** graph input names of each module's A and B, in `modules` order */
  inputs: { A: string; B: string }[]
  /** graph output names of their gradients */
  outputs: { A: string; B: string }[]
  /** with `trainBase`: every base tensor as a graph input (HF layout) and its gradient output */
  base: BaseTensor[]
}

/** A checkpoint tensor that full-weight training feeds and differentiates. */
export interface BaseTensor {
  /** the checkpoint name, e.g. model.layers.0.mlp.up_proj.weight */
  name: string
  input: string
  output: string
  shape: number[]
}

export interface TrainingGraphOptions {
  /**
   * Full-weight training (the demo base model's pre-training, scripts/make-demo-model.ts): base
   * tensors become graph inputs instead of constants, so the tape differentiates them too.
   */
  trainBase?: boolean
  /** the most floats in one row block of logits (default 2^22, 16 MB); tests make it small */
  logitBlockFloats?: number
  /**
   * The frozen base Linears as serving builds them for `infer.weightFormat` (default fp32):
   * int8/int4 store serving's quantized bytes and dequantize in the graph (quantized-base.ts)
   */
  baseFormat?: WeightFormat
}

/** Refuses, by name, any architecture feature this graph does not compute yet. */
export function checkTrainable(cfg: ModelConfig): void {
  const why: string[] = []
  const fam = familyOf(cfg)
  // every family the runtime serves trains today; this guards a future family file whose fused
  // module the graph cannot split, so it is refused by name instead of trained wrongly
  if (cfg.numLayers > 0 && fam.layer(cfg, 0).modules.some((m) => partOrder(cfg, m) === undefined))
    why.push('fused projections whose parts do not cover the rows once')
  if (why.length > 0)
    throw new TrainingUnsupportedError(
      `training computes the Llama, Qwen2/3, Mistral, Gemma 1/2/3, Phi-3, GLM, Falcon and BLOOM shapes; ${cfg.architecture} uses ${why.join(', ')}`,
      { architecture: cfg.architecture, features: why }
    )
}

export function buildTrainingGraph(
  cfg: ModelConfig,
  ckpt: CheckpointReader,
  modules: LoraModule[],
  batch: number,
  seqLen: number,
  /** a scratch directory for model.onnx + weights.bin */
  dir: string,
  opts: TrainingGraphOptions = {}
): TrainingGraph {
  checkTrainable(cfg)
  const fam = familyOf(cfg)
  const format = opts.baseFormat ?? 'fp32'
  if (opts.trainBase && format !== 'fp32')
    throw new TrainingUnsupportedError(`full-weight training of a ${format} base (it trains fp32 weights)`)
  const g = new GraphBuilder('weights.bin', join(dir, 'weights.bin'))
  const opset = format === 'fp32' ? 17 : QUANTIZED_OPSET
  const t = new Tape(g, opset)
  const qbase = format === 'fp32' ? null : quantizedBase(g, cfg, format)
  const [B, T, H, D] = [batch, seqLen, cfg.hiddenSize, cfg.headDim]
  const [nH, nKv] = [cfg.numHeads, cfg.numKvHeads]
  const ids = g.input('input_ids', DT.INT64, [B, T])
  const targets = g.input('targets', DT.INT64, [B * T])
  const weights = g.input('weights', DT.FLOAT, [B * T])

  const params = new Map<string, { A: Val; B: Val; m: LoraModule }>()
  const inputs: TrainingGraph['inputs'] = []
  for (const [i, m] of modules.entries()) {
    const A = t.param(`lora_A.${i}`, [m.r, m.inFeatures])
    const Bv = t.param(`lora_B.${i}`, [m.outFeatures, m.r])
    params.set(m.path, { A, B: Bv, m })
    inputs.push({ A: A.name, B: Bv.name })
  }
  const base = new Map<string, Val>()
  const baseTensor = (name: string): Val | null => {
    if (!opts.trainBase) return null
    let v = base.get(name)
    if (!v) {
      v = t.param(`base.${name}`, [...ckpt.info(name)!.shape])
      base.set(name, v)
    }
    return v
  }
  // full-weight training: an HF-layout [out, in] input, transposed in the graph
  const weight = (name: string): Val => t.transpose(baseTensor(name)!, [1, 0])
  const vector = (name: string): Val =>
    baseTensor(name) ?? t.constant(ckpt.read(name), [ckpt.info(name)!.shape[0]!])

  /** x [..., in] · Wᵀ through the tape's frozen-linear seam (2-D inside; reshapes are free). */
  const frozen = (x: Val, w: FrozenWeight, shape: [number, number]): Val => {
    const lead = x.shape.slice(0, -1)
    const M = lead.reduce((a, b) => a * b, 1)
    const x2 = x.shape.length === 2 ? x : t.reshape(x, [M, shape[1]])
    const y = t.frozenLinear(x2, w, shape)
    return x.shape.length === 2 ? y : t.reshape(y, [...lead, shape[0]])
  }
  /**
   * x · Wᵀ (+ bias) (+ LoRA) of one checkpoint module. A fused module whose parts interleave
   * (BLOOM's, Falcon's query_key_value) has its weight rows, bias and LoRA B rows permuted to
   * [q | k | v] blocks here, so its parts are slices; the permutation's VJP maps B's gradient back
   * to PEFT's row order.
   */
  const linear = (x: Val, m: ModuleSpec): Val => {
    const order = partOrder(cfg, m) ?? null
    const rows = (w: Float32Array, width: number): Float32Array => {
      if (!order) return w
      const out = new Float32Array(w.length)
      for (const [i, r] of order.entries()) out.set(w.subarray(r * width, (r + 1) * width), i * width)
      return out
    }
    let y: Val
    if (opts.trainBase) {
      // full-weight training feeds HF-layout weights; permuting their rows in the graph is not built
      if (order)
        throw new TrainingUnsupportedError(
          `full-weight training of ${cfg.architecture}'s interleaved ${m.path}`
        )
      y = t.matmul(x, weight(`${m.path}.weight`))
      if (ckpt.info(`${m.path}.bias`)) y = t.add(y, vector(`${m.path}.bias`))
    } else {
      const w = rows(ckpt.read(`${m.path}.weight`), m.cols)
      // a quantized base: serving's int8/int4 codes, dequantized in the graph (quantized-base.ts)
      const wq = qbase
        ? qbase(m.path, w, m.rows, m.cols, m.parts)
        : g.weight(`w${m.path}`, w, [m.rows, m.cols])
      y = frozen(x, wq, [m.rows, m.cols])
      // biases (Qwen2's q/k/v, GLM's, BLOOM's and Falcon's): constants, so no gradient of their own
      if (ckpt.info(`${m.path}.bias`))
        y = t.add(y, t.constant(rows(ckpt.read(`${m.path}.bias`), 1), [m.rows]))
    }
    const p = params.get(m.path)
    if (p) {
      const Bp = order ? t.permuteRows(p.B, order) : p.B
      const xa = t.matmul(x, t.transpose(p.A, [1, 0]))
      y = t.add(y, t.scale(t.matmul(xa, t.transpose(Bp, [1, 0])), p.m.scale))
    }
    return y
  }
  // Gemma's (1 + w) is folded into the constant in fp32, as HF's `1.0 + weight.float()`
  const normWeight = (name: string, n: number): Val => {
    const p = baseTensor(name)
    if (p) return cfg.norm === 'rms1p' ? t.addScalar(p, 1) : p
    const w = ckpt.read(name)
    return t.constant(cfg.norm === 'rms1p' ? Float32Array.from(w, (x) => 1 + x) : w, [n])
  }
  /**
   * The family's norm over the last axis (n features: the hidden state, or one head for q/k
   * norms): RMSNorm, or LayerNorm with its bias (Falcon, BLOOM)
   */
  const norm = (x: Val, w: string, n = H): Val => {
    const eps = cfg.rmsNormEps
    if (cfg.norm === 'layernorm') {
      const xc = t.add(x, t.scale(t.sumLast(x), -1 / n))
      const inv = t.rsqrt(t.addScalar(t.scale(t.sumLast(t.mul(xc, xc)), 1 / n), eps))
      return t.add(t.mul(t.mul(xc, inv), normWeight(w, n)), vector(w.replace(/weight$/, 'bias')))
    }
    const wv = normWeight(w, n)
    if (!wv.grad) return t.rmsNorm(x, wv.name, eps)
    const ms = t.scale(t.sumLast(t.mul(x, x)), 1 / n)
    return t.mul(t.mul(x, t.rsqrt(t.addScalar(ms, eps))), wv)
  }
  /** cap · tanh(x / cap) (Gemma 2's attention and final soft-capping) */
  const softcap = (x: Val, cap: number | null): Val =>
    cap === null ? x : t.scale(t.tanh(t.scale(x, 1 / cap)), cap)
  const activate = (x: Val): Val =>
    cfg.activation === 'gelu_tanh' ? t.geluTanh(x) : cfg.activation === 'gelu' ? t.gelu(x) : t.silu(x)

  // RoPE as HF applies it (positions.ts), one table set per base (Gemma 3's sliding layers have
  // their own); ALiBi families (BLOOM, Falcon-RW) add per-head key-position biases instead
  const ropes = new Map<boolean, (x: Val) => Val>()
  const ropeOf = (local: boolean): ((x: Val) => Val) => {
    let f = ropes.get(local)
    if (!f) {
      const { cos, sin, rot } = ropeTables(cfg, T, local)
      const [c, s, r] = [t.constant(cos, [T, D]), t.constant(sin, [T, D]), t.constant(rot, [D, D])]
      f = (x: Val) => t.add(t.mul(x, c), t.mul(t.matmul(x, r), s))
      ropes.set(local, f)
    }
    return f
  }
  const alibi = cfg.positions === 'alibi' ? t.constant(alibiBias(cfg, T), [nKv, nH / nKv, 1, T]) : null
  const masks = new Map<number | null, Val>()
  const maskFor = (window: number | null): Val => {
    let m = masks.get(window)
    if (!m) masks.set(window, (m = t.constant(attentionMask(T, window), [T, T])))
    return m
  }

  const embedParam = baseTensor(fam.embedName)
  const embedName = embedParam ? '' : g.weight('embed', ckpt.read(fam.embedName), [cfg.vocabSize, H])
  let h = embedParam
    ? t.gather(embedParam, ids, [B, T])
    : t.fixed(g.op('Gather', [embedName, ids], { axis: 0 }), [B, T, H])
  // Gemma: embeddings times sqrt(hidden) rounded to fp32, as HF's normalizer tensor
  if (cfg.embedScale !== null) h = t.scale(h, cfg.embedScale)
  // BLOOM's word_embeddings_layernorm
  if (fam.embedNorm) h = norm(h, fam.embedNorm)
  const nRep = nH / nKv
  for (let l = 0; l < cfg.numLayers; l++) {
    const lw = fam.layer(cfg, l)
    // one MatMul per checkpoint module; a fused module's parts (Phi-3, GLM, BLOOM, Falcon) are
    // slices of its output, so its LoRA (one A, B over all rows, as PEFT trains it) gets one
    // gradient for all parts
    const done = new Map<string, Val>()
    const proj = (x: Val, p: Projection): Val => {
      const m = lw.modules.find((s) => s.parts.some((q) => q.proj === p))
      if (!m) throw new TrainingUnsupportedError(`${cfg.architecture} layer ${l} has no ${p}`)
      let y = done.get(m.path)
      if (!y) done.set(m.path, (y = linear(x, m)))
      if (m.parts.length === 1) return y
      let at = 0
      for (const q of m.parts) {
        const n = projectionShape(cfg, q.proj)[1]
        if (q.proj === p) return t.sliceLast(y, at, n)
        at += n
      }
      throw new Error('unreachable')
    }
    const window = cfg.layerWindows[l] ?? null
    const rope = alibi ? (x: Val) => x : ropeOf(cfg.ropeLocalTheta !== null && window !== null)
    const x = norm(h, lw.inputNorm)
    // [B, T, n·D] → [B, n, T, D], with Qwen3's / Gemma 3's per-head RMSNorm before RoPE
    const heads = (v: Val, n: number, w?: string) => {
      const v4 = t.reshape(v, [B, T, n, D])
      return t.transpose(w ? norm(v4, w, D) : v4, [0, 2, 1, 3])
    }
    const q = rope(heads(proj(x, 'q_proj'), nH, lw.qNorm))
    const k = rope(heads(proj(x, 'k_proj'), nKv, lw.kNorm))
    const v = heads(proj(x, 'v_proj'), nKv)
    // GQA without copying K/V: query heads grouped per kv head broadcast against one kv head
    const q5 = t.reshape(q, [B, nKv, nRep, T, D])
    const k5 = t.transpose(t.reshape(k, [B, nKv, 1, T, D]), [0, 1, 2, 4, 3])
    const qk = t.matmul(q5, k5)
    // BLOOM: q·k·scale + bias; Falcon-RW: (q·k + bias)·scale
    const raw =
      alibi && cfg.alibiStyle === 'falcon'
        ? t.scale(t.add(qk, alibi), cfg.attentionScale)
        : softcap(t.scale(qk, cfg.attentionScale), cfg.attnSoftcap)
    const scores = t.add(alibi && cfg.alibiStyle !== 'falcon' ? t.add(raw, alibi) : raw, maskFor(window))
    const ctx = t.matmul(t.softmax(scores), t.reshape(v, [B, nKv, 1, T, D]))
    const merged = t.reshape(t.transpose(t.reshape(ctx, [B, nH, T, D]), [0, 2, 1, 3]), [B, T, nH * D])
    let o = proj(merged, 'o_proj')
    // Gemma 2/3's and GLM-4's sandwich norms: on each sublayer's output before its residual add
    if (lw.postAttnNorm) o = norm(o, lw.postAttnNorm)
    const mlp = (x2: Val): Val => {
      const up = proj(x2, 'up_proj')
      const act = cfg.mlp === 'gated' ? t.mul(activate(proj(x2, 'gate_proj')), up) : activate(up)
      const d = proj(act, 'down_proj')
      return lw.postMlpNorm ? norm(d, lw.postMlpNorm) : d
    }
    if (cfg.parallelBlock) {
      // Falcon: attention and MLP both read the layer input (one shared norm or one each)
      h = t.add(h, t.add(mlp(lw.mlpNorm === lw.inputNorm ? x : norm(h, lw.mlpNorm)), o))
    } else {
      h = t.add(h, o)
      h = t.add(h, mlp(norm(h, lw.mlpNorm)))
    }
  }
  const hf = t.reshape(norm(h, fam.finalNorm), [B * T, H])
  // a frozen head reads its [vocab, hidden] rows in place (tied: the embedding's own initializer)
  // a quantized base quantizes lm_head as serving does (a tied one from the embedding's rows,
  // whose Gather keeps reading fp32)
  const head: Val | FrozenWeight = opts.trainBase
    ? !cfg.tieWordEmbeddings
      ? weight(fam.lmHead)
      : t.transpose(embedParam!, [1, 0])
    : qbase
      ? qbase(
          'lm_head',
          ckpt.read(cfg.tieWordEmbeddings ? fam.embedName : fam.lmHead),
          cfg.vocabSize,
          H,
          null
        )
      : cfg.tieWordEmbeddings
        ? embedName
        : g.weight('lm_head', ckpt.read(fam.lmHead), [cfg.vocabSize, H])
  // The [rows, vocab] logits and their gradient are the graph's largest tensors (4×128 tokens ×
  // 49k vocab: 100 MB each), so the head and the loss run on row blocks of at most LOGIT_FLOATS
  // floats (each block's exp(logits − max) is kept for its gradient; the rest is transient). A
  // quantized head is dequantized again for each block: measured on the 135M bench, one block
  // instead cost int8 160 MB and int4 110 MB more peak RSS (int8 then above fp32).
  const blockFloats = opts.logitBlockFloats ?? LOGIT_FLOATS
  // as few blocks as fit, of equal rows (the last may be shorter)
  const N = B * T
  const blocks = Math.ceil(N / Math.min(N, Math.max(1, Math.floor(blockFloats / cfg.vocabSize))))
  const rowsPer = Math.ceil(N / blocks)
  const sizes = Array.from({ length: blocks }, (_, i) => Math.min(rowsPer, N - i * rowsPer))
  const rowSizes = sizes.length === 1 ? '' : g.int64('loss_rows', sizes)
  const cut = (name: string) =>
    sizes.length === 1 ? [name] : g.node('Split', [name, rowSizes], sizes.length, { axis: 0 })
  const [tCuts, wCuts] = [cut(targets), cut(weights)]
  let sum: Val | null = null
  for (const [i, hc] of t.splitRows(hf, sizes).entries()) {
    const logits = softcap(
      typeof head === 'object' ? t.matmul(hc, head) : frozen(hc, head, [cfg.vocabSize, H]),
      cfg.finalSoftcap
    )
    const l = t.crossEntropy(logits, tCuts[i]!, wCuts[i]!)
    sum = sum ? t.add(sum, l) : l
  }
  const loss = sum!
  t.backward(loss)

  g.node('Identity', [loss.name], ['loss'])
  g.output('loss', DT.FLOAT, [])
  const outputs: TrainingGraph['outputs'] = []
  for (const [i, m] of modules.entries()) {
    const p = params.get(m.path)!
    const names = { A: `grad_A.${i}`, B: `grad_B.${i}` }
    g.node('Identity', [t.gradOf(p.A)], [names.A])
    g.node('Identity', [t.gradOf(p.B)], [names.B])
    g.output(names.A, DT.FLOAT, p.A.shape)
    g.output(names.B, DT.FLOAT, p.B.shape)
    outputs.push(names)
  }
  const baseOut: BaseTensor[] = []
  for (const [name, v] of base) {
    const output = `grad_base.${name}`
    g.node('Identity', [t.gradOf(v)], [output])
    g.output(output, DT.FLOAT, v.shape)
    baseOut.push({ name, input: v.name, output, shape: v.shape })
  }
  g.finishExternalData()
  const modelPath = join(dir, 'model.onnx')
  writeFileSync(modelPath, g.encodeModel({ '': opset }))
  return { modelPath, inputs, outputs, base: baseOut }
}
