// Reading config.json the same way for every family: typed getters that name the field and the
// allowed values when a value is wrong, the fields every decoder shares (sizes, RoPE, special
// token ids) with Llama's defaults, and the Llama weight layout other families start from.
import {
  type Json,
  type LayerWeights,
  type ModelConfig,
  ModelConfigError,
  type ModuleSpec,
  type Projection,
  type RopeScaling
} from './types.ts'

// Sanity bounds: far above any real model, low enough that a corrupt or hostile config cannot
// make the builder allocate absurd buffers.
export const LIMITS = {
  hiddenSize: 65_536,
  numLayers: 1_024,
  numHeads: 1_024,
  intermediateSize: 1_048_576,
  vocabSize: 4_194_304,
  headDim: 1_024,
  maxPositionEmbeddings: 16_777_216
}

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function posInt(cfg: Json, key: string, max: number, fallback?: number): number {
  const v = cfg[key] ?? fallback
  if (v === undefined) throw new ModelConfigError(`config.json: "${key}" is required`, { field: key })
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw new ModelConfigError(
      `config.json: "${key}" must be an integer in 1..${max}, got ${JSON.stringify(v)}`,
      { field: key, value: v }
    )
  }
  return v
}

export function posNumber(cfg: Json, key: string, fallback: number, where = 'config.json'): number {
  const v = cfg[key] ?? fallback
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ModelConfigError(`${where}: "${key}" must be a positive number, got ${JSON.stringify(v)}`, {
      field: key,
      value: v
    })
  }
  return v
}

/** A positive number, or null when the key is absent or null. */
export function optNumber(cfg: Json, key: string): number | null {
  if (cfg[key] === undefined || cfg[key] === null) return null
  return posNumber(cfg, key, Number.NaN)
}

export function bool(cfg: Json, key: string, fallback: boolean): boolean {
  const v = cfg[key] ?? fallback
  if (typeof v !== 'boolean') {
    throw new ModelConfigError(`config.json: "${key}" must be true or false, got ${JSON.stringify(v)}`, {
      field: key,
      value: v
    })
  }
  return v
}

/** Refuses a key whose value is set to anything but the allowed ones (absent/null is fine). */
export function only(cfg: Json, key: string, allowed: readonly unknown[]): void {
  const v = cfg[key]
  if (v === undefined || v === null || allowed.includes(v)) return
  throw new ModelConfigError(
    `config.json: "${key}" ${JSON.stringify(v)} is not supported; allowed: ${allowed.map((a) => JSON.stringify(a)).join(', ')}`,
    { field: key, value: v }
  )
}

function tokenIds(v: unknown, field: string, where: string): number[] | null {
  if (v === undefined || v === null) return null
  const list = Array.isArray(v) ? v : [v]
  for (const id of list) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new ModelConfigError(
        `${where}: "${field}" must be a token id or a list of them, got ${JSON.stringify(v)}`,
        { field, value: v }
      )
    }
  }
  return list as number[]
}

/** rope_scaling (or transformers 5's rope_parameters): only types we compute exactly. */
export function parseRopeScaling(
  v: unknown,
  maxPos: number,
  field = 'rope_scaling',
  /** a top-level original_max_position_embeddings (Phi-3), which wins over the one inside */
  topOrig?: unknown
): RopeScaling {
  if (v === undefined || v === null) return null
  if (!isObject(v)) {
    throw new ModelConfigError(
      `config.json: "${field}" must be an object or null, got ${JSON.stringify(v)}`,
      {
        field
      }
    )
  }
  // transformers renamed "type" to "rope_type"; checkpoints carry either
  const type = v.rope_type ?? v.type
  if (type === 'default' || type === undefined) return null
  const where = `config.json ${field}`
  if (type === 'linear') return { type: 'linear', factor: posNumber(v, 'factor', Number.NaN, where) }
  if (type === 'llama3') {
    const factor = posNumber(v, 'factor', Number.NaN, where)
    const low = posNumber(v, 'low_freq_factor', Number.NaN, where)
    const high = posNumber(v, 'high_freq_factor', Number.NaN, where)
    if (!(high > low)) {
      throw new ModelConfigError(
        `${where}: "high_freq_factor" (${high}) must be greater than "low_freq_factor" (${low})`,
        { field: `${field}.high_freq_factor` }
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
  if (type === 'longrope' || type === 'su') {
    // Phi-3 keeps original_max_position_embeddings at the top level, and transformers prefers it
    const orig = posInt(
      { original_max_position_embeddings: topOrig ?? v.original_max_position_embeddings },
      'original_max_position_embeddings',
      LIMITS.maxPositionEmbeddings
    )
    const factors = (key: string): number[] => {
      const f = v[key]
      if (
        !Array.isArray(f) ||
        f.length === 0 ||
        !f.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)
      ) {
        throw new ModelConfigError(`${where}: "${key}" must be a non-empty list of positive numbers`, {
          field: `${field}.${key}`
        })
      }
      return f as number[]
    }
    const factor =
      v.factor === undefined || v.factor === null ? maxPos / orig : posNumber(v, 'factor', 1, where)
    const attentionFactor =
      v.attention_factor === undefined || v.attention_factor === null
        ? factor <= 1
          ? 1
          : Math.sqrt(1 + Math.log(factor) / Math.log(orig))
        : posNumber(v, 'attention_factor', 1, where)
    return {
      type: 'longrope',
      shortFactor: factors('short_factor'),
      longFactor: factors('long_factor'),
      originalMaxPositionEmbeddings: orig,
      attentionFactor
    }
  }
  throw new ModelConfigError(
    `config.json: ${field} type ${JSON.stringify(type)} is not supported; allowed: default, linear, llama3, longrope`,
    { field: `${field}.rope_type`, value: type }
  )
}

/** RoPE base and scaling from rope_theta/rope_scaling or transformers 5's rope_parameters. */
export function parseRope(
  cfg: Json,
  maxPos: number,
  thetaDefault = 10_000
): { theta: number; scaling: RopeScaling } {
  const rp = cfg.rope_parameters
  if (isObject(rp) && (rp.rope_theta !== undefined || rp.rope_type !== undefined)) {
    return {
      theta: posNumber(
        rp,
        'rope_theta',
        cfg.rope_theta === undefined ? thetaDefault : (cfg.rope_theta as number),
        'config.json rope_parameters'
      ),
      scaling: parseRopeScaling(rp, maxPos, 'rope_parameters', cfg.original_max_position_embeddings)
    }
  }
  return {
    theta: posNumber(cfg, 'rope_theta', thetaDefault),
    scaling: parseRopeScaling(cfg.rope_scaling, maxPos, 'rope_scaling', cfg.original_max_position_embeddings)
  }
}

export interface DecoderDefaults {
  family: string
  architectures: readonly string[]
  /** default RoPE base when config.json has none */
  ropeTheta?: number
  /** the key of the activation (Gemma: hidden_activation) */
  activationKeys?: readonly string[]
  activations?: Record<string, ModelConfig['activation']>
}

/** Fields every decoder shares, with Llama's defaults; a family file adjusts the rest. */
export function parseDecoder(cfg: Json, generationConfig: unknown, d: DecoderDefaults): ModelConfig {
  const architecture = (cfg.architectures as string[])[0]!
  const modelType = typeof cfg.model_type === 'string' ? cfg.model_type : d.family
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
  const actKeys = d.activationKeys ?? ['hidden_act']
  const acts = d.activations ?? { silu: 'silu' }
  const actKey = actKeys.find((k) => cfg[k] !== undefined && cfg[k] !== null) ?? actKeys[0]!
  const actRaw = cfg[actKey] ?? Object.keys(acts)[0]
  const activation = typeof actRaw === 'string' ? acts[actRaw] : undefined
  if (activation === undefined) {
    throw new ModelConfigError(
      `config.json: "${actKey}" ${JSON.stringify(actRaw)} is not supported; allowed: ${Object.keys(acts).join(', ')}`,
      { field: actKey, value: actRaw }
    )
  }
  if (cfg.mlp_bias === true) {
    throw new ModelConfigError('config.json: "mlp_bias": true is not supported; allowed: false', {
      field: 'mlp_bias'
    })
  }
  const pretrainingTp = cfg.pretraining_tp
  if (pretrainingTp !== undefined && pretrainingTp !== null && pretrainingTp !== 1) {
    throw new ModelConfigError(
      `config.json: "pretraining_tp" ${JSON.stringify(pretrainingTp)} is not supported; allowed: 1`,
      { field: 'pretraining_tp' }
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
        { field: 'eos_token_id', value: id }
      )
    }
  }
  const rope = parseRope(cfg, maxPositionEmbeddings, d.ropeTheta)
  return {
    family: d.family,
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
    positions: 'rope',
    alibiStyle: 'bloom',
    rotaryDim: headDim,
    ropeInterleaved: false,
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    ropeLocalTheta: null,
    rmsNormEps: posNumber(cfg, 'rms_norm_eps', 1e-6),
    norm: 'rms',
    activation,
    mlp: 'gated',
    parallelBlock: false,
    tieWordEmbeddings: bool(cfg, 'tie_word_embeddings', false),
    attentionBias: false,
    qkNorm: false,
    sandwichNorms: false,
    attentionScale: 1 / Math.sqrt(headDim),
    attnSoftcap: null,
    finalSoftcap: null,
    embedScale: null,
    layerWindows: new Array<number | null>(numLayers).fill(null),
    maxPositionEmbeddings,
    slidingWindow: null,
    bosTokenId,
    eosTokenIds: [...new Set(eosTokenIds)]
  }
}

/** Windows per layer from `layer_types` ("sliding_attention"/"full_attention"), or a default rule. */
export function layerWindows(
  cfg: Json,
  numLayers: number,
  window: number | null,
  slides: (l: number) => boolean
): (number | null)[] {
  const types = cfg.layer_types
  if (types !== undefined && types !== null) {
    if (!Array.isArray(types) || types.length !== numLayers) {
      throw new ModelConfigError(
        `config.json: "layer_types" must list one entry per layer (${numLayers}), got ${JSON.stringify(types)?.slice(0, 80)}`,
        { field: 'layer_types' }
      )
    }
    return types.map((t) => {
      if (t === 'full_attention') return null
      if (t === 'sliding_attention') {
        if (window === null)
          throw new ModelConfigError(
            'config.json: "layer_types" has sliding layers but "sliding_window" is not set',
            {
              field: 'sliding_window'
            }
          )
        return window
      }
      throw new ModelConfigError(
        `config.json: "layer_types" entry ${JSON.stringify(t)} is not supported; allowed: "full_attention", "sliding_attention"`,
        { field: 'layer_types', value: t }
      )
    })
  }
  return Array.from({ length: numLayers }, (_, l) => (window !== null && slides(l) ? window : null))
}

/** The window every sliding layer uses (families have one), or null when no layer slides. */
export function windowOf(windows: (number | null)[]): number | null {
  return windows.find((w) => w !== null) ?? null
}

const ident = (i: number) => i

/** A plain Linear holding one projection. */
export function plain(path: string, proj: Projection, rows: number, cols: number, bias = false): ModuleSpec {
  return { path, parts: [{ proj, rowOf: ident }], rows, cols, bias }
}

/** A Linear whose output rows are several projections one after another (Phi-3's qkv_proj). */
export function concat(path: string, parts: [Projection, number][], cols: number, bias = false): ModuleSpec {
  let at = 0
  const out: ModuleSpec['parts'] = []
  for (const [proj, n] of parts) {
    const start = at
    out.push({ proj, rowOf: (i) => start + i })
    at += n
  }
  return { path, parts: out, rows: at, cols, bias }
}

/** The Llama layer: self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj, two RMSNorms. */
export function llamaLayer(cfg: ModelConfig, l: number): LayerWeights {
  const p = `model.layers.${l}`
  const H = cfg.hiddenSize
  const q = cfg.numHeads * cfg.headDim
  const kv = cfg.numKvHeads * cfg.headDim
  const I = cfg.intermediateSize
  const b = cfg.attentionBias
  return {
    inputNorm: `${p}.input_layernorm.weight`,
    mlpNorm: `${p}.post_attention_layernorm.weight`,
    modules: [
      plain(`${p}.self_attn.q_proj`, 'q_proj', q, H, b),
      plain(`${p}.self_attn.k_proj`, 'k_proj', kv, H, b),
      plain(`${p}.self_attn.v_proj`, 'v_proj', kv, H, b),
      plain(`${p}.self_attn.o_proj`, 'o_proj', H, q),
      plain(`${p}.mlp.gate_proj`, 'gate_proj', I, H),
      plain(`${p}.mlp.up_proj`, 'up_proj', I, H),
      plain(`${p}.mlp.down_proj`, 'down_proj', H, I)
    ]
  }
}

export const LLAMA_NAMES = {
  embedName: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight'
}
