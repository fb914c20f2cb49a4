// RoPE as config.json states it: rope_theta and rope_scaling, or transformers 5's
// rope_parameters. Only scalings computed exactly (model/rope.ts) are accepted: linear, llama3 and
// longrope (Phi-3's "su"); anything else is refused naming the allowed types, never approximated.
import { isObject, LIMITS, posInt, posNumber } from './fields.ts'
import { type Json, ModelConfigError, type RopeScaling } from './types.ts'

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
