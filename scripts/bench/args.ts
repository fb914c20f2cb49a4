// Command-line parsing shared by the benchmarks: node:util parseArgs plus --help (prints the
// usage line, exit 0) and a usage error for unknown or malformed options (exit 2) instead of a
// stack trace.
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util'

type Values<O extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ options: O; strict: true }>
>['values']

export function benchArgs<const O extends ParseArgsOptionsConfig>(usage: string, options: O): Values<O> {
  const withHelp = { ...options, help: { type: 'boolean', short: 'h' } } as const
  let values: Values<O> & { help?: boolean }
  try {
    values = parseArgs({ options: withHelp, strict: true, allowNegative: true }).values as Values<O> & {
      help?: boolean
    }
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\nusage: ${usage}\n`)
    process.exit(2)
  }
  if (values.help) {
    process.stdout.write(`usage: ${usage}\n`)
    process.exit(0)
  }
  return values
}
