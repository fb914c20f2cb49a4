// `openlora config print`: the effective config and where each value came from (default, a mode's
// default, the --config file, an OPENLORA_* variable or a flag). `openlora config schema`: the
// JSON Schema of the config file (editors and other tools read it), from the same zod schemas
// the node validates with.
import { z } from '../../../common/schema.ts'
import type { Command } from '../../cli/command.ts'
import { fullConfigSchema } from '../../config/load.ts'
import { DEMO_CONFIG_BASE } from '../../demo.ts'
import { configOptions, resolvedFromFlags } from './shared.ts'

/** `key = value  (source)` lines, one per leaf key, in schema order. */
export function printLines(config: Record<string, unknown>, sources: Record<string, string>): string[] {
  const lines: string[] = []
  const walk = (prefix: string, v: unknown): void => {
    if (v != null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
      for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x)
      return
    }
    lines.push(`${prefix} = ${JSON.stringify(v)}  (${sourceFor(sources, prefix)})`)
  }
  walk('', config)
  return lines
}

function sourceFor(sources: Record<string, string>, key: string): string {
  for (let k = key; k !== ''; k = k.includes('.') ? k.slice(0, k.lastIndexOf('.')) : '')
    if (sources[k] !== undefined) return sources[k]
  return 'default'
}

const printCommand: Command = {
  name: 'config print',
  summary: 'print the effective config and where each value came from',
  options: {
    ...configOptions,
    demo: { type: 'boolean', description: 'as `start --demo` would see it (its local-chain defaults)' },
    json: { type: 'boolean', description: 'print { config, sources } as JSON' }
  },
  async run({ values }) {
    const { config, sources } = resolvedFromFlags(
      values,
      [],
      values.demo === true ? DEMO_CONFIG_BASE : undefined,
      'start --demo default'
    )
    if (values.json === true) console.log(JSON.stringify({ config, sources }, null, 2))
    else console.log(printLines(config, sources).join('\n'))
    return 0
  }
}

const schemaCommand: Command = {
  name: 'config schema',
  summary: 'print the JSON Schema of the config file',
  options: {},
  async run() {
    const schema = z.toJSONSchema(fullConfigSchema(), { io: 'input', unrepresentable: 'any' })
    console.log(JSON.stringify({ title: 'OpenLoRA node config', ...schema }, null, 2))
    return 0
  }
}

export const configCommands: Command[] = [printCommand, schemaCommand]
