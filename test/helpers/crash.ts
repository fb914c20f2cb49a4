// Runs test/sim/crash/worker.ts as a real child process and kills it with SIGKILL at a chosen
// moment, collecting every `ACK` line it printed first (what it acknowledged to the world).
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'

const WORKER = join(import.meta.dirname, '..', 'sim', 'crash', 'worker.ts')

export interface Worker {
  child: ChildProcess
  acks: string[][]
  /** resolves once `pred` holds for the acks seen so far (checked on each new line) */
  until(pred: (acks: string[][]) => boolean, timeoutMs?: number): Promise<void>
  kill9(): Promise<void>
  exited: Promise<number | null>
  stderr(): string
}

export function startWorker(args: string[], env: Record<string, string>): Worker {
  const child = spawn(process.execPath, [WORKER, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const acks: string[][] = []
  let err = ''
  let buf = ''
  const waiters: (() => void)[] = []
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    let i = buf.indexOf('\n')
    while (i >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      if (line.startsWith('ACK ')) acks.push(line.slice(4).split(' '))
      i = buf.indexOf('\n')
    }
    for (const w of waiters.splice(0)) w()
  })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return {
    child,
    acks,
    exited,
    stderr: () => err,
    async until(pred, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs
      while (!pred(acks)) {
        if (child.exitCode !== null) throw new Error(`worker exited (${child.exitCode}): ${err}`)
        if (Date.now() > deadline) throw new Error(`worker: condition not met in ${timeoutMs} ms; ${err}`)
        await new Promise<void>((r) => {
          waiters.push(r)
          setTimeout(r, 50)
        })
      }
    },
    async kill9() {
      child.kill('SIGKILL')
      await exited
    }
  }
}
