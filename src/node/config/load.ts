// Builds the node's config from, in increasing precedence: the schema defaults (written out in
// config/default.json), the defaults of a mode (`start --demo`), an optional --config JSON file,
// OPENLORA_* environment variables and command-line overrides. Each layer is checked as it is
// applied, so an error names where the bad value came from, and every key remembers its source
// (what `openlora config print` shows).
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseWith, schemaAt, type z } from '../../common/schema.ts'
import type { ConfigSection } from '../../common/service.ts'
import { extensions } from '../extensions.ts'
import { ConfigError, configSchema, type NodeConfig, validateConfig } from './schema.ts'

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
  /** defaults of a mode (e.g. `start --demo`), merged over the schema defaults, under the file */
  base?: Record<string, unknown>
  /** what `config print` calls the base layer */
  baseSource?: string
}

/** The effective config and, per leaf key (`network.maxConnections`), where its value came from. */
export interface ResolvedConfig {
  config: NodeConfig
  sources: Record<string, string>
}

export function extensionSections(): Record<string, ConfigSection> {
  const out: Record<string, ConfigSection> = {}
  for (const e of extensions) Object.assign(out, e.config ?? {})
  return out
}

/** The schema of the whole config: core sections plus the given (default: registered) ones. */
export function fullConfigSchema(sections = extensionSections()): z.ZodObject {
  return configSchema(Object.fromEntries(Object.entries(sections).map(([k, s]) => [k, s.schema])))
}

/** Every section with every default: what config/default.json holds. */
export function configDefaults(sections = extensionSections()): Record<string, unknown> {
  return fullConfigSchema(sections).parse({}) as Record<string, unknown>
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

function setAt(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.')
  let o = obj
  for (const p of parts.slice(0, -1)) {
    o[p] = isPlainObject(o[p]) ? { ...(o[p] as Record<string, unknown>) } : {}
    o = o[p] as Record<string, unknown>
  }
  o[parts.at(-1)!] = value
}

/** Marks every leaf under `value` (objects recurse; arrays are leaves) as coming from `source`. */
function markSources(sources: Record<string, string>, prefix: string, value: unknown, source: string): void {
  if (isPlainObject(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) markSources(sources, prefix ? `${prefix}.${k}` : k, v, source)
    return
  }
  for (const k of Object.keys(sources)) if (k.startsWith(`${prefix}.`)) delete sources[k]
  // re-inserted, so the order of `sources` is the order values were set (sourceOf relies on it)
  delete sources[prefix]
  sources[prefix] = source
}

/** The innermost schema kind of a key, past optional/default/nullable wrappers. */
function kindOf(s: z.ZodType): string {
  let d = (s as unknown as { _zod: { def: { type: string; innerType?: z.ZodType } } })._zod.def
  while (d.innerType) d = (d.innerType as unknown as { _zod: { def: typeof d } })._zod.def
  return d.type
}

/** Parses a string (env var or flag) by the type of the key it sets. */
export function parseByType(key: string, schema: z.ZodType, raw: string, source: string): unknown {
  const s = raw.trim()
  switch (kindOf(schema)) {
    case 'string':
    case 'enum':
    case 'literal':
      return raw
    case 'number':
      if (!/^-?\d+(\.\d+)?$/.test(s)) throw new ConfigError(key, raw, 'a number', source)
      return Number(s)
    case 'boolean':
      if (/^(true|1|yes|on)$/i.test(s)) return true
      if (/^(false|0|no|off)$/i.test(s)) return false
      throw new ConfigError(key, raw, 'true or false', source)
    case 'union':
      // e.g. boolean | a policy name (infer.threadSpinning): a boolean word, JSON, else the
      // string itself, which the schema then checks (naming what it allows)
      if (/^(true|false)$/i.test(s)) return s.toLowerCase() === 'true'
      try {
        return JSON.parse(s)
      } catch {
        return raw
      }
    case 'array':
      if (s.startsWith('[') || s === 'null') return parseJson(key, raw, source)
      return s === '' ? [] : s.split(',').map((x) => x.trim())
    default:
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

function applyOne(
  config: Record<string, unknown>,
  sources: Record<string, string>,
  schema: z.ZodObject,
  o: Override
): void {
  const at = schemaAt(schema, config, o.key.split('.'))
  if (!at)
    throw new ConfigError(
      o.key,
      o.value,
      `a known key (sections: ${Object.keys(schema.shape).join(', ')})`,
      o.source
    )
  const value = typeof o.value === 'string' ? parseByType(o.key, at, o.value, o.source) : o.value
  // checked on its own first, so the error names this override even when the rest is fine
  parseWith(at, value, { at: o.key, source: o.source, error: ConfigError.of })
  setAt(config, o.key, value)
  markSources(sources, o.key, value, o.source)
}

/** The source of the deepest recorded key at or above `key`. */
/**
 * The source of the deepest recorded key at or above `key`; for a key that is missing (a rule
 * across keys, like the testnet preset needing rpcUrl), the last non-default source that set a
 * key of the same section, since that is the value the rule reacted to.
 */
function sourceOf(sources: Record<string, string>, key: string): string | undefined {
  const clean = key.replace(/\[\d+\]/g, '')
  for (let k = clean; k !== ''; k = k.includes('.') ? k.slice(0, k.lastIndexOf('.')) : '')
    if (sources[k] !== undefined) return sources[k]
  const section = clean.includes('.') ? clean.slice(0, clean.lastIndexOf('.')) : clean
  const set = Object.entries(sources).filter(([k, s]) => k.startsWith(`${section}.`) && s !== 'default')
  return set.at(-1)?.[1]
}

/** The effective config and where each value came from. */
export function resolveConfig(opts: LoadConfigOptions = {}): ResolvedConfig {
  const schema = fullConfigSchema(opts.sections ?? extensionSections())
  let config = schema.parse({}) as Record<string, unknown>
  const sources: Record<string, string> = {}
  markSources(sources, '', config, 'default')
  const check = (source?: string): void => {
    try {
      validateConfig(schema, config)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      const key = String(err.data.key)
      const d = err.data
      throw new ConfigError(
        key,
        d.value,
        String(d.allowed),
        sourceOf(sources, key) ?? source,
        d.rule as string
      )
    }
  }
  if (opts.base) {
    config = deepMerge(config, structuredClone(opts.base))
    markSources(sources, '', opts.base, opts.baseSource ?? 'mode default')
  }

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
    markSources(sources, '', parsed, `file ${opts.file}`)
    check(opts.file)
  }

  const env = opts.env ?? process.env
  for (const name of Object.keys(env).sort()) {
    const key = envKey(name)
    const raw = env[name]
    if (key === undefined || raw === undefined) continue
    // Only nested names (with __) or exact top-level keys are config; other OPENLORA_* vars
    // (OPENLORA_DEBUG, test switches) belong to other tools.
    if (!ENV_ALIASES[name] && !name.includes('__') && !(key in schema.shape)) continue
    applyOne(config, sources, schema, { key, value: raw, source: `env ${name}` })
  }

  for (const o of opts.overrides ?? []) applyOne(config, sources, schema, o)

  check()
  const valid = validateConfig(schema, config)
  valid.dataDir = resolve(valid.dataDir)
  return { config: valid, sources }
}

export function loadConfig(opts: LoadConfigOptions = {}): NodeConfig {
  return resolveConfig(opts).config
}
