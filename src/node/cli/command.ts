// The CLI is a table of commands. Each command lives in its own module under ./commands and
// declares its options for node:util parseArgs, so `--help` is generated from the same table
// that parses, and unknown flags are rejected with the list of allowed ones.
import { parseArgs } from 'node:util'

export interface OptionSpec {
  type: 'string' | 'boolean'
  short?: string
  multiple?: boolean
  /** shown in --help */
  description: string
  /** shown in --help as the value's name, e.g. DIR */
  valueName?: string
}

export interface Command {
  /** e.g. 'start' or 'adapter add' (sub-commands are space separated) */
  name: string
  summary: string
  /** positional arguments shown in usage, e.g. 'DIR' */
  positionals?: string
  options: Record<string, OptionSpec>
  run(args: {
    values: Record<string, string | boolean | string[] | undefined>
    positionals: string[]
  }): Promise<number>
}

/** Raised for bad command-line input; main prints it with the command's usage and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

export function helpText(cmd: Command): string {
  const lines = [
    `openlora ${cmd.name}${cmd.positionals ? ' ' + cmd.positionals : ''} [options]`,
    '',
    cmd.summary,
    ''
  ]
  const opts = Object.entries({
    ...cmd.options,
    help: { type: 'boolean', description: 'show this help' } as OptionSpec
  })
  if (opts.length > 0) lines.push('Options:')
  for (const [name, o] of opts) {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.valueName ?? 'VALUE'}` : ''}`
    lines.push(`  ${flag.padEnd(30)} ${o.description}${o.multiple ? ' (repeatable)' : ''}`)
  }
  return lines.join('\n')
}

export function parseCommandArgs(cmd: Command, argv: string[]) {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    help: { type: 'boolean', short: 'h' }
  }
  // parseArgs rejects keys present with an undefined value, so copy only the ones set.
  for (const [k, o] of Object.entries(cmd.options)) {
    options[k] = { type: o.type }
    if (o.short !== undefined) options[k].short = o.short
    if (o.multiple !== undefined) options[k].multiple = o.multiple
  }
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

/** Reads a required string option or throws a UsageError naming it. */
export function requireString(values: Record<string, unknown>, name: string): string {
  const v = values[name]
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`)
  return v
}
