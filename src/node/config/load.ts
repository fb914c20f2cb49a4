// Builds the node's config from, in increasing precedence: config/default.json (embedded), an
// optional --config JSON file, OPENLORA_* environment variables and command-line overrides.
// Each layer is checked as it is applied, so an error names where the bad value came from.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import defaults from '../../../config/default.json' with { type: 'json' }
import type { ConfigSection } from '../../common/service.ts'
import { extensions } from '../extensions.ts'
import { ConfigError, checkValue, coreSpec, type NodeConfig, type Spec, validateConfig } from './schema.ts'

/** Env names that are not derived from the key path (documented in the README). */
const ENV_ALIASES: Record<string, string> = {
  OPENLORA_HOME: 'dataDir',
  OPENLORA_DATA_DIR: 'dataDir',
  OPENLORA_LOG_LEVEL: 'log.level',
  OPENLORA_LOG_FORMAT: 'log.format'
}

const MAX_CONFIG_FILE_BYTES = 1024 * 1024

export interface Override {
  key: string
  /** a string is parsed by the key's type (like an env var); anything else is used as is */
  value: unknown
  source: string
}

export interface LoadConfigOptions {
  /** path of a JSON config file */
  file?: string
  /** environment to read OPENLORA_* from; process.env by default, {} to ignore it */
  env?: Record<string, string | undefined>
  overrides?: Override[]
  /** extra sections; by default the ones registered in src/node/extensions.ts */
  sections?: Record<string, ConfigSection>
  /** defaults of a mode (e.g. `start --demo`), merged over the embedded defaults, under the file */
  base?: Record<string, unknown>
}

function extensionSections(): Record<string, ConfigSection> {
  const out: Record<string, ConfigSection> = {}
  for (const e of extensions) Object.assign(out, e.config ?? {})
  return out
}

export function allSpecs(sections = extensionSections()): Record<string, Spec> {
  const specs: Record<string, Spec> = { ...coreSpec }
  for (const [k, s] of Object.entries(sections)) specs[k] = s.spec
  return specs
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v != null && typeof v === 'object' && !Array.isArray(v)
}

/** Objects merge key by key; arrays and scalars replace. */
export function deepMerge(
  base: Record<string, unknown>,
  over: Record<string, unknown>
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(over)) {
    out[k] = isPlainObject(v) && isPlainObject(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v
  }
  return out
}

function specAt(specs: Record<string, Spec>, key: string): Spec | undefined {
  const [head, ...rest] = key.split('.')
  let spec: Spec | undefined = specs[head!]
  for (const part of rest) spec = spec?.type === 'section' ? spec.fields[part] : undefined
  return spec
}

function setAt(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.')
  let o = obj
  for (const p of parts.slice(0, -1)) {
    o[p] = isPlainObject(o[p]) ? { ...(o[p] as Record<string, unknown>) } : {}
    o = o[p] as Record<string, unknown>
  }
  o[parts.at(-1)!] = value
}

/** Parses a string (env var or flag) by the type of the key it sets. */
export function parseByType(key: string, spec: Spec, raw: string, source: string): unknown {
  const s = raw.trim()
  switch (spec.type) {
    case 'string':
      return raw
    case 'int':
      if (!/^-?\d+$/.test(s)) throw new ConfigError(key, raw, 'an integer', source)
      return Number(s)
    case 'bool':
      if (/^(true|1|yes|on)$/i.test(s)) return true
      if (/^(false|0|no|off)$/i.test(s)) return false
      throw new ConfigError(key, raw, 'true or false', source)
    case 'strings':
      if (s.startsWith('[')) return parseJson(key, raw, source)
      return s === '' ? [] : s.split(',').map((x) => x.trim())
    case 'json':
    case 'section':
      return parseJson(key, raw, source)
  }
}

function parseJson(key: string, raw: string, source: string): unknown {
  try {
    return JSON.parse(raw)
  } catch {
    throw new ConfigError(key, raw, 'valid JSON', source)
  }
}

/** OPENLORA_NETWORK__MAX_CONNECTIONS → network.maxConnections */
export function envKey(name: string): string | undefined {
  if (ENV_ALIASES[name]) return ENV_ALIASES[name]
  if (!name.startsWith('OPENLORA_')) return undefined
  return name
    .slice('OPENLORA_'.length)
    .split('__')
    .map((seg) => seg.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()))
    .join('.')
}

function applyOne(config: Record<string, unknown>, specs: Record<string, Spec>, o: Override): void {
  const spec = specAt(specs, o.key)
  if (!spec)
    throw new ConfigError(
      o.key,
      o.value,
      `a known key (sections: ${Object.keys(specs).join(', ')})`,
      o.source
    )
  const value = typeof o.value === 'string' ? parseByType(o.key, spec, o.value, o.source) : o.value
  checkValue(o.key, spec, value, o.source)
  setAt(config, o.key, value)
}

export function loadConfig(opts: LoadConfigOptions = {}): NodeConfig {
  const sections = opts.sections ?? extensionSections()
  const specs = allSpecs(sections)
  let config: Record<string, unknown> = structuredClone(defaults) as Record<string, unknown>
  for (const [k, s] of Object.entries(sections)) config[k] = structuredClone(s.defaults)
  if (opts.base) config = deepMerge(config, structuredClone(opts.base))

  if (opts.file) {
    let text: string
    try {
      text = readFileSync(opts.file, 'utf8')
    } catch (err) {
      throw new ConfigError('--config', opts.file, `a readable JSON file (${(err as Error).message})`)
    }
    if (text.length > MAX_CONFIG_FILE_BYTES)
      throw new ConfigError('--config', opts.file, `a file under ${MAX_CONFIG_FILE_BYTES} bytes`)
    const parsed = parseJson('--config', text, opts.file)
    if (!isPlainObject(parsed)) throw new ConfigError('--config', opts.file, 'a JSON object')
    config = deepMerge(config, parsed)
    try {
      validateConfig(config, specs)
    } catch (err) {
      if (err instanceof ConfigError) {
        const d = err.data
        throw new ConfigError(String(d.key), d.value, String(d.allowed), opts.file)
      }
      throw err
    }
  }

  const env = opts.env ?? process.env
  for (const name of Object.keys(env).sort()) {
    const key = envKey(name)
    const raw = env[name]
    if (key === undefined || raw === undefined) continue
    // Only nested names (with __) or exact top-level keys are config; other OPENLORA_* vars
    // (OPENLORA_DEBUG, test switches) belong to other tools.
    if (!ENV_ALIASES[name] && !name.includes('__') && !(key in specs)) continue
    applyOne(config, specs, { key, value: raw, source: `env ${name}` })
  }

  for (const o of opts.overrides ?? []) applyOne(config, specs, o)

  const valid = validateConfig(config, specs)
  valid.dataDir = resolve(valid.dataDir)
  return valid
}
