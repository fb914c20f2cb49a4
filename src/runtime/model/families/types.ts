// What one model family is, as data: the normalised config every part of the runtime reads
// (ModelConfig, with its architecture features) and the description a family file provides
// (how config.json maps onto it, where each weight sits in the checkpoint, fused ones included,
// and which PEFT module names adapt which projection). The graph builder, the slot pools and the
// PEFT loader read these; none of them knows a family by name.
import { OpenLoraError } from '../../../common/errors.ts'

export class ModelConfigError extends OpenLoraError<'MODEL_CONFIG_INVALID'> {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('MODEL_CONFIG_INVALID', message, details)
  }
}

export type Json = Record<string, unknown>

/** The logical projections a LoRA slot pool can hold; fused checkpoint modules map onto them. */
export const PROJECTIONS = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj'
] as const
export type Projection = (typeof PROJECTIONS)[number]

/**
 * Checkpoint Linears that are not one projection, by the short name PEFT's target_modules uses:
 * Phi-3's fused qkv_proj and gate_up_proj (GLM's gate_up_proj too), BLOOM's and Falcon's fused
 * query_key_value and their dense (o_proj), dense_h_to_4h (up) and dense_4h_to_h (down). A LoRA
 * target is one of these or a projection (which selects the module holding it); which ones a model
 * has is its family's (training/lora.ts refuses one it lacks, naming those it has).
 */
export const MODULE_NAMES = [
  'qkv_proj',
  'gate_up_proj',
  'query_key_value',
  'dense',
  'dense_h_to_4h',
  'dense_4h_to_h'
] as const
/** Every name a LoRA target list may hold, for every family (a test checks each family's modules are here). */
export const LORA_TARGET_NAMES = [...PROJECTIONS, ...MODULE_NAMES] as const
export type LoraTargetName = (typeof LORA_TARGET_NAMES)[number]

export type RopeScaling =
  | null
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3'
      factor: number
      lowFreqFactor: number
      highFreqFactor: number
      originalMaxPositionEmbeddings: number
    }
  | {
      /**
       * Phi-3's LongRoPE: each rotary frequency divided by a per-pair factor, `shortFactor` for
       * sequences within originalMaxPositionEmbeddings and `longFactor` beyond, cos/sin scaled by
       * attentionFactor. transformers switches per forward pass; a KV cache cannot (its keys are
       * already rotated), so a session picks once by its capacity, as vLLM does (model/rope.ts)
       */
      type: 'longrope'
      shortFactor: number[]
      longFactor: number[]
      originalMaxPositionEmbeddings: number
      attentionFactor: number
    }

/**
 * - `rms`: weight · x / sqrt(mean(x²) + eps) (Llama)
 * - `rms1p`: (1 + weight) · x / sqrt(mean(x²) + eps) (Gemma; folded into the weight at build)
 * - `layernorm`: LayerNorm with weight and bias (Falcon, BLOOM; the bias sits next to the weight)
 */
export type NormKind = 'rms' | 'rms1p' | 'layernorm'

/** The MLP's activation: SiLU (Llama) or GELU with the tanh approximation (Gemma's gelu_pytorch_tanh) or exact GELU. */
export type Activation = 'silu' | 'gelu_tanh' | 'gelu'

/** Everything about a model that changes what the graph computes, read from config.json. */
export interface ModelConfig {
  /** registry key of the family file that parsed it ('llama', 'qwen3', 'gemma2', …) */
  family: string
  /** architectures[0] as written */
  architecture: string
  /** config.model_type as written ('llama', 'mistral', 'qwen2', …) */
  modelType: string
  /** `_name_or_path` when the checkpoint carries it, else null (the loader falls back to the dir name) */
  nameOrPath: string | null
  hiddenSize: number
  numLayers: number
  numHeads: number
  numKvHeads: number
  headDim: number
  intermediateSize: number
  vocabSize: number
  /** `rope`: rotary (rotate-half, inside GroupQueryAttention); `alibi`: linear biases (BLOOM) */
  positions: 'rope' | 'alibi'
  /**
   * with ALiBi: `bloom` adds slope · key position after the softmax scale (q·k·scale + bias);
   * `falcon` (Falcon-RW) adds it before ((q·k + bias)·scale) with the slopes and each bias rounded
   * to bfloat16, as its build_alibi_tensor computes them
   */
  alibiStyle: 'bloom' | 'falcon'
  /** head dims that rotate (the first ones; partial rotary when < headDim, e.g. GLM's half) */
  rotaryDim: number
  /** rotary pairs are (2i, 2i+1) instead of (i, i + rotaryDim/2) (GLM) */
  ropeInterleaved: boolean
  ropeTheta: number
  ropeScaling: RopeScaling
  /** RoPE base of the sliding-window layers when it differs from ropeTheta (Gemma 3), else null */
  ropeLocalTheta: number | null
  rmsNormEps: number
  norm: NormKind
  activation: Activation
  /** `gated`: down(act(gate(x)) · up(x)) (Llama); `plain`: down(act(up(x))) (Falcon, BLOOM) */
  mlp: 'gated' | 'plain'
  /** attention and MLP both read the layer input and add to one residual (Falcon) */
  parallelBlock: boolean
  tieWordEmbeddings: boolean
  /** q/k/v projections carry a bias (Qwen2; o_proj never has one) */
  attentionBias: boolean
  /** per-head RMSNorm of q and k before RoPE (Qwen3, Gemma 3) */
  qkNorm: boolean
  /** norms on the attention and MLP outputs before each residual add (Gemma 2/3) */
  sandwichNorms: boolean
  /** softmax scale of q·k (1/sqrt(head_dim) unless the family says otherwise) */
  attentionScale: number
  /** attention logits become cap·tanh(logits/cap) (Gemma 2), else null */
  attnSoftcap: number | null
  /** final logits become cap·tanh(logits/cap) (Gemma 2), else null */
  finalSoftcap: number | null
  /** embeddings are multiplied by this (Gemma: sqrt(hidden_size) rounded to fp32), else null */
  embedScale: number | null
  /** per layer: the sliding window (keys a query sees, itself included), or null for global */
  layerWindows: (number | null)[]
  maxPositionEmbeddings: number
  /** the window of the sliding layers when any layer slides, else null */
  slidingWindow: number | null
  bosTokenId: number | null
  eosTokenIds: number[]
}

/** One checkpoint Linear (possibly fused) and which logical projections its output rows hold. */
export interface ModuleSpec {
  /** module path as PEFT names it, without `.weight` (e.g. model.layers.3.self_attn.qkv_proj) */
  path: string
  /** projections in this module; `rowOf(i)` = row of the module's weight holding feature i */
  parts: { proj: Projection; rowOf: (i: number) => number }[]
  /** output rows of the module's weight */
  rows: number
  /** input features */
  cols: number
  /** the module has a `.bias` the graph adds */
  bias: boolean
}

export interface LayerWeights {
  /** norm before attention */
  inputNorm: string
  /** norm before the MLP */
  mlpNorm: string
  /** sandwich norms: on the attention / MLP output before the residual add */
  postAttnNorm?: string
  postMlpNorm?: string
  /** per-head q/k norms */
  qNorm?: string
  kNorm?: string
  /** the Linears of the layer; together they cover every projection the family uses */
  modules: ModuleSpec[]
}

export interface Family {
  /** registry key */
  name: string
  /** config.json `architectures[0]` values this file serves */
  architectures: readonly string[]
  /** config.json `model_type` values this file serves */
  modelTypes: readonly string[]
  /** config.json (+ generation_config.json) → ModelConfig; refuses what the graph cannot compute */
  parse(raw: Json, generationConfig: unknown): ModelConfig
  embedName: string
  /** a norm right after the embedding lookup (BLOOM's word_embeddings_layernorm) */
  embedNorm?: string
  finalNorm: string
  /** the untied lm_head's weight */
  lmHead: string
  layer(cfg: ModelConfig, l: number): LayerWeights
}
