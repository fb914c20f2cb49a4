// The training graph of a Llama-shape model (also Qwen2's q/k/v biases, Mistral's sliding windows): forward to the mean token cross-entropy, then the
// backward pass for the LoRA tensors only (the base weights are constants, so the tape never
// differentiates them). Attention is spelled out with MatMul/Softmax instead of the inference
// graph's GroupQueryAttention contrib op, because that op has no gradient; RoPE's rotate-half is a
// constant ±1 permutation matrix so its gradient is a MatMul too. The batch shape is fixed at
// build time: `--tokens` trains one padded batch every step.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { OpenLoraError } from '../../common/errors.ts'
import type { CheckpointReader } from '../formats/safetensors.ts'
import { DT, GraphBuilder } from '../graph/proto.ts'
import type { ModelConfig } from '../model/config.ts'
import { familyOf } from '../model/families/index.ts'
import type { Projection } from '../model/families/types.ts'
import { rotaryTables } from '../model/rope.ts'
import { Tape, type Val } from './autodiff.ts'

export class TrainingUnsupportedError extends OpenLoraError<'TRAINING_UNSUPPORTED'> {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('TRAINING_UNSUPPORTED', message, details)
  }
}

/** One adapted Linear: PEFT's module path and its LoRA shapes. */
export interface LoraModule {
  layer: number
  proj: Projection
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
}

const MASKED = -1e9

/** Refuses, by name, any architecture feature this graph does not compute yet. */
export function checkTrainable(cfg: ModelConfig): void {
  const why: string[] = []
  if (cfg.norm !== 'rms') why.push(`norm ${cfg.norm}`)
  if (cfg.mlp !== 'gated' || cfg.activation !== 'silu') why.push(`MLP ${cfg.mlp}/${cfg.activation}`)
  if (cfg.positions !== 'rope' || cfg.rotaryDim !== cfg.headDim || cfg.ropeInterleaved)
    why.push('partial, interleaved or ALiBi positions')
  if (cfg.qkNorm || cfg.sandwichNorms) why.push('q/k or sandwich norms')
  if (cfg.parallelBlock) why.push('parallel attention + MLP')
  if (cfg.attnSoftcap !== null || cfg.finalSoftcap !== null) why.push('soft-capping')
  if (cfg.embedScale !== null) why.push('embedding scale')
  // Phi-3's qkv_proj / gate_up_proj: one checkpoint tensor holds several projections, which the
  // graph's per-projection LoRA placement does not split yet
  if (
    cfg.numLayers > 0 &&
    familyOf(cfg)
      .layer(cfg, 0)
      .modules.some((m) => m.parts.length > 1)
  )
    why.push('fused projections (qkv_proj/gate_up_proj)')
  if (why.length > 0)
    throw new TrainingUnsupportedError(
      `training supports the Llama shape (with Qwen2's q/k/v biases and Mistral's sliding windows) so far; ${cfg.architecture} uses ${why.join(', ')}`,
      { architecture: cfg.architecture, features: why }
    )
}

function transposed(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length)
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = w[i * cols + j]!
  return t
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
  const g = new GraphBuilder('weights.bin', join(dir, 'weights.bin'))
  const t = new Tape(g)
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
  const weight = (name: string, rows: number, cols: number): Val => {
    const p = baseTensor(name)
    return p ? t.transpose(p, [1, 0]) : t.constant(transposed(ckpt.read(name), rows, cols), [cols, rows])
  }
  const vector = (name: string): Val =>
    baseTensor(name) ?? t.constant(ckpt.read(name), [ckpt.info(name)!.shape[0]!])

  const linear = (x: Val, path: string, rows: number, cols: number): Val => {
    let y = t.matmul(x, weight(`${path}.weight`, rows, cols))
    // Qwen2's q/k/v biases: constants, so they shift activations but add no gradient term of their own
    if (ckpt.info(`${path}.bias`)) y = t.add(y, vector(`${path}.bias`))
    const p = params.get(path)
    if (p) {
      const xa = t.matmul(x, t.transpose(p.A, [1, 0]))
      y = t.add(y, t.scale(t.matmul(xa, t.transpose(p.B, [1, 0])), p.m.scale))
    }
    return y
  }
  const rms = (x: Val, w: string): Val => {
    const ms = t.scale(t.sumLast(t.mul(x, x)), 1 / H)
    return t.mul(t.mul(x, t.rsqrt(t.addScalar(ms, cfg.rmsNormEps))), vector(w))
  }

  // RoPE as HF applies it: x·cos + rotate_half(x)·sin with cos/sin = cat(freqs, freqs)
  const { cos: c2, sin: s2 } = rotaryTables(cfg, T, D)
  const cos = new Float32Array(T * D)
  const sin = new Float32Array(T * D)
  for (let p = 0; p < T; p++)
    for (let i = 0; i < D; i++) {
      cos[p * D + i] = c2[p * (D / 2) + (i % (D / 2))]!
      sin[p * D + i] = s2[p * (D / 2) + (i % (D / 2))]!
    }
  const rot = new Float32Array(D * D) // rotate_half(x) = x · rot: out[i] = −x[i+D/2], out[i+D/2] = x[i]
  for (let i = 0; i < D / 2; i++) {
    rot[(i + D / 2) * D + i] = -1
    rot[i * D + i + D / 2] = 1
  }
  const cosV = t.constant(cos, [T, D])
  const sinV = t.constant(sin, [T, D])
  const rotV = t.constant(rot, [D, D])
  const rope = (x: Val): Val => t.add(t.mul(x, cosV), t.mul(t.matmul(x, rotV), sinV))
  // causal, and for sliding-window layers (Mistral) also the keys at least `window` positions
  // back, as transformers' sliding-window mask (query i sees key j when 0 ≤ i − j < window)
  const masks = new Map<number | null, Val>()
  const maskFor = (window: number | null): Val => {
    let m = masks.get(window)
    if (!m) {
      const mask = new Float32Array(T * T)
      for (let i = 0; i < T; i++)
        for (let j = 0; j < T; j++)
          if (j > i || (window !== null && i - j >= window)) mask[i * T + j] = MASKED
      m = t.constant(mask, [T, T])
      masks.set(window, m)
    }
    return m
  }

  const embedParam = baseTensor(fam.embedName)
  const embed = embedParam ? null : ckpt.read(fam.embedName)
  let h = embedParam
    ? t.gather(embedParam, ids, [B, T])
    : t.fixed(g.op('Gather', [g.weight('embed', embed!, [cfg.vocabSize, H]), ids], { axis: 0 }), [B, T, H])
  const nRep = nH / nKv
  for (let l = 0; l < cfg.numLayers; l++) {
    const lw = fam.layer(cfg, l)
    const mod = (proj: Projection) => lw.modules.find((m) => m.parts[0]!.proj === proj)!
    const lin = (x: Val, proj: Projection) => {
      const m = mod(proj)
      return linear(x, m.path, m.rows, m.cols)
    }
    const x = rms(h, lw.inputNorm)
    const heads = (v: Val, n: number) => t.transpose(t.reshape(v, [B, T, n, D]), [0, 2, 1, 3])
    const q = rope(heads(lin(x, 'q_proj'), nH))
    const k = rope(heads(lin(x, 'k_proj'), nKv))
    const v = heads(lin(x, 'v_proj'), nKv)
    // GQA without copying K/V: query heads grouped per kv head broadcast against one kv head
    const q5 = t.reshape(q, [B, nKv, nRep, T, D])
    const k5 = t.transpose(t.reshape(k, [B, nKv, 1, T, D]), [0, 1, 2, 4, 3])
    const scores = t.add(t.scale(t.matmul(q5, k5), cfg.attentionScale), maskFor(cfg.layerWindows[l] ?? null))
    const ctx = t.matmul(t.softmax(scores), t.reshape(v, [B, nKv, 1, T, D]))
    const merged = t.reshape(t.transpose(t.reshape(ctx, [B, nH, T, D]), [0, 2, 1, 3]), [B, T, nH * D])
    h = t.add(h, lin(merged, 'o_proj'))
    const x2 = rms(h, lw.mlpNorm)
    h = t.add(h, lin(t.mul(t.silu(lin(x2, 'gate_proj')), lin(x2, 'up_proj')), 'down_proj'))
  }
  const hf = t.reshape(rms(h, fam.finalNorm), [B * T, H])
  const head = !cfg.tieWordEmbeddings
    ? weight(fam.lmHead, cfg.vocabSize, H)
    : embedParam
      ? t.transpose(embedParam, [1, 0])
      : t.constant(transposed(embed!, cfg.vocabSize, H), [H, cfg.vocabSize])
  const loss = t.crossEntropy(t.matmul(hf, head), targets, weights)
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
  writeFileSync(modelPath, g.encodeModel({ '': 17 }))
  return { modelPath, inputs, outputs, base: baseOut }
}
