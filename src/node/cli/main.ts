// Entry point of the `openlora` CLI (also `npm start` = `openlora start`).
import { pathToFileURL } from 'node:url'
import { type Command, helpText, parseCommandArgs, UsageError } from './command.ts'
import { commands } from './commands/index.ts'

function topHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length), 8)
  return [
    'openlora: a node of the OpenLoRA inference network',
    '',
    'Usage: openlora <command> [options]   (openlora <command> --help for its options)',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`)
  ].join('\n')
}

/** Finds the longest command name matching the leading words (so 'adapter add' beats 'adapter'). */
function findCommand(argv: string[]): { cmd: Command; rest: string[] } | undefined {
  let best: { cmd: Command; rest: string[] } | undefined
  for (const cmd of commands) {
    const words = cmd.name.split(' ')
    if (words.every((w, i) => argv[i] === w) && (!best || words.length > best.cmd.name.split(' ').length)) {
      best = { cmd, rest: argv.slice(words.length) }
    }
  }
  return best
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    console.log(topHelp())
    return argv.length === 0 ? 2 : 0
  }
  const found = findCommand(argv)
  if (!found) {
    console.error(`unknown command "${argv.join(' ')}"\n\n${topHelp()}`)
    return 2
  }
  const { cmd, rest } = found
  try {
    const parsed = parseCommandArgs(cmd, rest)
    if (parsed.values.help === true) {
      console.log(helpText(cmd))
      return 0
    }
    return await cmd.run(parsed as Parameters<Command['run']>[0])
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`openlora ${cmd.name}: ${err.message}\n\n${helpText(cmd)}`)
      return 2
    }
    const e = err as Error & { code?: string }
    console.error(`openlora ${cmd.name}: ${e.name === 'Error' ? '' : `${e.name}: `}${e.message}`)
    if (process.env.OPENLORA_DEBUG) console.error(e.stack)
    return 1
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const code = await main(process.argv.slice(2))
  // Commands that start long-lived services return only when those have stopped.
  process.exitCode = code
}
