// Options every node command shares, and how they become config overrides.
import type { OptionSpec } from '../../cli/command.ts'
import { UsageError } from '../../cli/command.ts'
import { type Override, type ResolvedConfig, resolveConfig } from '../../config/load.ts'
import type { NodeConfig } from '../../config/schema.ts'

export const configOptions: Record<string, OptionSpec> = {
  config: {
    type: 'string',
    description: 'JSON config file merged over config/default.json',
    valueName: 'FILE'
  },
  'data-dir': {
    type: 'string',
    description: 'data directory (default ./.openlora or $OPENLORA_HOME)',
    valueName: 'DIR'
  },
  set: {
    type: 'string',
    multiple: true,
    description: 'any config key, e.g. --set adverts.heartbeatMs=5000',
    valueName: 'KEY=VALUE'
  }
}

type Values = Record<string, string | boolean | string[] | undefined>

/** The --data-dir and --set flags as config overrides (after `extra`). */
export function overridesFromFlags(values: Values, extra: Override[] = []): Override[] {
  const overrides: Override[] = []
  if (typeof values['data-dir'] === 'string')
    overrides.push({ key: 'dataDir', value: values['data-dir'], source: '--data-dir' })
  overrides.push(...extra)
  for (const kv of (values.set as string[] | undefined) ?? []) {
    const at = kv.indexOf('=')
    if (at <= 0) throw new UsageError(`--set takes KEY=VALUE, got "${kv}"`)
    overrides.push({ key: kv.slice(0, at), value: kv.slice(at + 1), source: `--set ${kv.slice(0, at)}` })
  }
  return overrides
}

/** Flags win over env, env over the file, the file over defaults; with where each value came from. */
export function resolvedFromFlags(
  values: Values,
  extra: Override[] = [],
  base?: Record<string, unknown>,
  baseSource?: string
): ResolvedConfig {
  return resolveConfig({
    file: values.config as string | undefined,
    overrides: overridesFromFlags(values, extra),
    ...(base ? { base, ...(baseSource ? { baseSource } : {}) } : {})
  })
}

/** Flags win over env, env over the file, the file over defaults. */
export function configFromFlags(
  values: Values,
  extra: Override[] = [],
  base?: Record<string, unknown>
): NodeConfig {
  return resolvedFromFlags(values, extra, base).config
}
