// The fields every decoder shares (sizes, activation, RoPE, special token ids) read from
// config.json with Llama's defaults, and the per-layer sliding windows; a family file adjusts the
// rest. The typed getters are fields.ts, RoPE is rope-config.ts, weight layouts are layout.ts.
import { bool, isObject, LIMITS, posInt, posNumber, tokenIds } from './fields.ts'
import { parseRope } from './rope-config.ts'
import { type Json, type ModelConfig, ModelConfigError } from './types.ts'

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
