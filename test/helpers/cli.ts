// Runs the `openlora` CLI in this process and captures what it prints, so tests read exactly what
// a user sees (stdout through console.log or process.stdout.write, stderr through console.error).
import { main } from '../../src/node/cli/main.ts'

export interface CliRun {
  code: number
  out: string
  err: string
}

export async function runCli(...argv: string[]): Promise<CliRun> {
  const out: string[] = []
  const err: string[] = []
  const log = console.log
  const error = console.error
  const write = process.stdout.write
  console.log = (...a: unknown[]) => void out.push(a.join(' '))
  console.error = (...a: unknown[]) => void err.push(a.join(' '))
  process.stdout.write = ((chunk: string) => out.push(String(chunk)) > 0) as typeof process.stdout.write
  try {
    return { code: await main(argv), out: out.join('\n'), err: err.join('\n') }
  } finally {
    console.log = log
    console.error = error
    process.stdout.write = write
  }
}
