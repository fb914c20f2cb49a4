// Normalises a Hugging Face `config.json` (plus optional `generation_config.json`) of the Llama
// family into one shape the graph builder, the reference forward pass and the adapter loader all
// read. Anything the runtime cannot compute faithfully is rejected here, naming the field, so a
// user never gets silently wrong logits from an unsupported option.
import { basename, resolve } from 'node:path'
import { OpenLoraError } from '../../common/errors.ts'

export class ModelConfigError extends OpenLoraError<'MODEL_CONFIG_INVALID'> {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('MODEL_CONFIG_INVALID', message, details)
  }
}

export type Architecture =
  | 'LlamaForCausalLM'
  | 'MistralForCausalLM'
  | 'Qwen2ForCausalLM'
  | 'DeepseekForCausalLM'

export const SUPPORTED_ARCHITECTURES: readonly Architecture[] = [
  'LlamaForCausalLM',
  'MistralForCausalLM',
  'Qwen2ForCausalLM',
  // dense DeepSeek checkpoints (deepseek-llm, deepseek-coder v1) use the Llama layout and mostly
  // ship as LlamaForCausalLM; this class name is also DeepSeek-MoE's, whose expert fields are
  // refused below
  'DeepseekForCausalLM'
]

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

export interface ModelConfig {
  architecture: Architecture
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
  ropeTheta: number
  ropeScaling: RopeScaling
  rmsNormEps: number
  tieWordEmbeddings: boolean
  /** q/k/v projections carry a bias (Qwen2 only; o_proj never has one) */
  attentionBias: boolean
  maxPositionEmbeddings: number
  /** set when attention is windowed below maxPositionEmbeddings: sequences must stay within it */
  slidingWindow: number | null
  bosTokenId: number | null
  eosTokenIds: number[]
}

// Sanity bounds: far above any real model of the family, low enough that a corrupt or hostile
// config cannot make the builder allocate absurd buffers.
const LIMITS = {
  hiddenSize: 65_536,
  numLayers: 1_024,
  numHeads: 1_024,
  intermediateSize: 1_048_576,
  vocabSize: 4_194_304,
  headDim: 1_024,
  maxPositionEmbeddings: 16_777_216
}

type Json = Record<string, unknown>

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function posInt(cfg: Json, key: string, max: number, fallback?: number): number {
  const v = cfg[key] ?? fallback
  if (v === undefined) throw new ModelConfigError(`config.json: "${key}" is required`, { field: key })
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw new ModelConfigError(
      `config.json: "${key}" must be an integer in 1..${max}, got ${JSON.stringify(v)}`,
      {
        field: key,
        value: v
      }
    )
  }
  return v
}

function posNumber(cfg: Json, key: string, fallback: number, where = 'config.json'): number {
  const v = cfg[key] ?? fallback
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ModelConfigError(`${where}: "${key}" must be a positive number, got ${JSON.stringify(v)}`, {
      field: key,
      value: v
    })
  }
  return v
}

function bool(cfg: Json, key: string, fallback: boolean): boolean {
  const v = cfg[key] ?? fallback
  if (typeof v !== 'boolean') {
    throw new ModelConfigError(`config.json: "${key}" must be true or false, got ${JSON.stringify(v)}`, {
      field: key,
      value: v
    })
  }
  return v
}

function tokenIds(v: unknown, field: string, where: string): number[] | null {
  if (v === undefined || v === null) return null
  const list = Array.isArray(v) ? v : [v]
  for (const id of list) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new ModelConfigError(
        `${where}: "${field}" must be a token id or a list of them, got ${JSON.stringify(v)}`,
        {
          field,
          value: v
        }
      )
    }
  }
  return list as number[]
}

function parseRopeScaling(v: unknown, maxPos: number): RopeScaling {
  if (v === undefined || v === null) return null
  if (!isObject(v)) {
    throw new ModelConfigError(
      `config.json: "rope_scaling" must be an object or null, got ${JSON.stringify(v)}`,
      {
        field: 'rope_scaling'
      }
    )
  }
  // transformers renamed "type" to "rope_type"; checkpoints carry either
  const type = v.rope_type ?? v.type
  const factor = posNumber(v, 'factor', Number.NaN, 'config.json rope_scaling')
  if (type === 'default') return null
  if (type === 'linear') return { type: 'linear', factor }
  if (type === 'llama3') {
    const low = posNumber(v, 'low_freq_factor', Number.NaN, 'config.json rope_scaling')
    const high = posNumber(v, 'high_freq_factor', Number.NaN, 'config.json rope_scaling')
    if (!(high > low)) {
      throw new ModelConfigError(
        `config.json rope_scaling: "high_freq_factor" (${high}) must be greater than "low_freq_factor" (${low})`,
        { field: 'rope_scaling.high_freq_factor' }
      )
    }
    const orig = posInt(v, 'original_max_position_embeddings', LIMITS.maxPositionEmbeddings, maxPos)
    return {
      type: 'llama3',
      factor,
      lowFreqFactor: low,
      highFreqFactor: high,
      originalMaxPositionEmbeddings: orig
    }
  }
  throw new ModelConfigError(
    `config.json: rope_scaling type ${JSON.stringify(type)} is not supported; allowed: linear, llama3 (or none)`,
    { field: 'rope_scaling.rope_type', value: type }
  )
}

/**
 * Parses config.json (and, when given, generation_config.json, whose eos/bos ids win because
 * chat models often list several eos ids only there).
 */
/**
 * A served model's id (docs/INTERFACES.md modelId): the checkpoint's `_name_or_path`, else the
 * name of its directory. The one definition: adverts, jobs, adapter stores and attribution all
 * name a model by it.
 */
export function modelIdOf(config: Pick<ModelConfig, 'nameOrPath'>, dir: string): string {
  return config.nameOrPath ?? basename(resolve(dir))
}

export function parseModelConfig(json: unknown, generationConfig?: unknown): ModelConfig {
  if (!isObject(json)) throw new ModelConfigError('config.json must be a JSON object')
  const cfg = json
  const archs = cfg.architectures
  if (!Array.isArray(archs) || archs.length !== 1 || typeof archs[0] !== 'string') {
    throw new ModelConfigError(
      `config.json: "architectures" must list exactly one architecture; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`,
      { field: 'architectures', value: archs }
    )
  }
  const architecture = archs[0] as Architecture
  if (!SUPPORTED_ARCHITECTURES.includes(architecture)) {
    throw new ModelConfigError(
      `config.json: architecture "${archs[0]}" is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`,
      { field: 'architectures', value: archs[0] }
    )
  }
  const modelType = typeof cfg.model_type === 'string' ? cfg.model_type : 'llama'

  const hiddenSize = posInt(cfg, 'hidden_size', LIMITS.hiddenSize)
  const numLayers = posInt(cfg, 'num_hidden_layers', LIMITS.numLayers)
  const numHeads = posInt(cfg, 'num_attention_heads', LIMITS.numHeads)
  const numKvHeads = posInt(cfg, 'num_key_value_heads', LIMITS.numHeads, numHeads)
  if (numHeads % numKvHeads !== 0) {
    throw new ModelConfigError(
      `config.json: "num_attention_heads" (${numHeads}) must be a multiple of "num_key_value_heads" (${numKvHeads})`,
      { field: 'num_key_value_heads', value: numKvHeads }
    )
  }
  let headDim: number
  if (cfg.head_dim === undefined || cfg.head_dim === null) {
    if (hiddenSize % numHeads !== 0) {
      throw new ModelConfigError(
        `config.json: "hidden_size" (${hiddenSize}) is not divisible by "num_attention_heads" (${numHeads}); set "head_dim"`,
        { field: 'head_dim' }
      )
    }
    headDim = hiddenSize / numHeads
  } else {
    headDim = posInt(cfg, 'head_dim', LIMITS.headDim)
  }
  if (headDim % 2 !== 0) {
    throw new ModelConfigError(`config.json: "head_dim" (${headDim}) must be even for rotary embeddings`, {
      field: 'head_dim'
    })
  }
  const intermediateSize = posInt(cfg, 'intermediate_size', LIMITS.intermediateSize)
  const vocabSize = posInt(cfg, 'vocab_size', LIMITS.vocabSize)
  const maxPositionEmbeddings = posInt(cfg, 'max_position_embeddings', LIMITS.maxPositionEmbeddings, 2048)

  for (const field of ['n_routed_experts', 'num_experts', 'num_local_experts', 'moe_intermediate_size']) {
    if (cfg[field] !== undefined && cfg[field] !== null && cfg[field] !== 0) {
      throw new ModelConfigError(
        `config.json: "${field}" marks a mixture-of-experts model, which is not supported; only dense models run`,
        { field, value: cfg[field] }
      )
    }
  }
  const act = cfg.hidden_act ?? 'silu'
  if (act !== 'silu') {
    throw new ModelConfigError(
      `config.json: "hidden_act" ${JSON.stringify(act)} is not supported; allowed: silu`,
      {
        field: 'hidden_act',
        value: act
      }
    )
  }
  if (cfg.mlp_bias === true) {
    throw new ModelConfigError('config.json: "mlp_bias": true is not supported; allowed: false', {
      field: 'mlp_bias'
    })
  }
  // Mistral v0.1's sliding window only changes results for sequences longer than the window; the
  // runtime caps its sequence length at slidingWindow so it never computes those wrongly.
  const sw = cfg.sliding_window
  const useSw = cfg.use_sliding_window ?? architecture === 'MistralForCausalLM'
  let slidingWindow: number | null = null
  if (useSw === true && sw !== undefined && sw !== null) {
    slidingWindow = posInt(cfg, 'sliding_window', LIMITS.maxPositionEmbeddings)
    if (slidingWindow >= maxPositionEmbeddings) slidingWindow = null
  }
  const pretrainingTp = cfg.pretraining_tp
  if (pretrainingTp !== undefined && pretrainingTp !== null && pretrainingTp !== 1) {
    throw new ModelConfigError(
      `config.json: "pretraining_tp" ${JSON.stringify(pretrainingTp)} is not supported; allowed: 1`,
      {
        field: 'pretraining_tp'
      }
    )
  }

  // Qwen2 hard-codes q/k/v bias (and none on o_proj) whatever the config says; Llama's
  // attention_bias would also put a bias on o_proj, which no model we target uses: refuse it
  // rather than half-support it.
  const attentionBias = architecture === 'Qwen2ForCausalLM'
  if (!attentionBias && bool(cfg, 'attention_bias', false)) {
    throw new ModelConfigError(
      `config.json: "attention_bias": true is not supported for ${architecture} (it adds q/k/v/o biases); allowed: false`,
      { field: 'attention_bias' }
    )
  }

  let bosTokenId = tokenIds(cfg.bos_token_id, 'bos_token_id', 'config.json')?.[0] ?? null
  let eosTokenIds = tokenIds(cfg.eos_token_id, 'eos_token_id', 'config.json') ?? []
  if (generationConfig !== undefined && generationConfig !== null) {
    if (!isObject(generationConfig))
      throw new ModelConfigError('generation_config.json must be a JSON object')
    const gBos = tokenIds(generationConfig.bos_token_id, 'bos_token_id', 'generation_config.json')
    const gEos = tokenIds(generationConfig.eos_token_id, 'eos_token_id', 'generation_config.json')
    if (gBos) bosTokenId = gBos[0] ?? bosTokenId
    if (gEos) eosTokenIds = gEos
  }
  for (const id of [bosTokenId, ...eosTokenIds]) {
    if (id !== null && id >= vocabSize) {
      throw new ModelConfigError(
        `config: special token id ${id} is outside the vocabulary (vocab_size ${vocabSize})`,
        {
          field: 'eos_token_id',
          value: id
        }
      )
    }
  }

  return {
    architecture,
    modelType,
    nameOrPath: typeof cfg._name_or_path === 'string' && cfg._name_or_path !== '' ? cfg._name_or_path : null,
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize,
    vocabSize,
    ropeTheta: posNumber(cfg, 'rope_theta', 10_000),
    ropeScaling: parseRopeScaling(cfg.rope_scaling, maxPositionEmbeddings),
    rmsNormEps: posNumber(cfg, 'rms_norm_eps', 1e-6),
    tieWordEmbeddings: bool(cfg, 'tie_word_embeddings', false),
    attentionBias,
    maxPositionEmbeddings,
    slidingWindow,
    bosTokenId,
    eosTokenIds: [...new Set(eosTokenIds)]
  }
}

/** Input/output feature sizes of each LoRA-targetable projection, as [in, out]. */
export function projectionShape(cfg: ModelConfig, target: string): [number, number] {
  const q = cfg.numHeads * cfg.headDim
  const kv = cfg.numKvHeads * cfg.headDim
  switch (target) {
    case 'q_proj':
      return [cfg.hiddenSize, q]
    case 'k_proj':
    case 'v_proj':
      return [cfg.hiddenSize, kv]
    case 'o_proj':
      return [q, cfg.hiddenSize]
    case 'gate_proj':
    case 'up_proj':
      return [cfg.hiddenSize, cfg.intermediateSize]
    case 'down_proj':
      return [cfg.intermediateSize, cfg.hiddenSize]
    default:
      throw new ModelConfigError(
        `unknown projection "${target}"; allowed: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj`,
        { field: 'target', value: target }
      )
  }
}

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
