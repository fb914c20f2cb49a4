// Typed getters for config.json: each names the field and the allowed values when a value is
// wrong, so a bad checkpoint fails with what to fix. Every family file reads its fields through
// them (rope-config.ts and common.ts too), so one rule and one message hold for all families.
import { type Json, ModelConfigError } from './types.ts'

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

/** A token id or a list of them (config.json and generation_config.json write either). */
export function tokenIds(v: unknown, field: string, where: string): number[] | null {
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
