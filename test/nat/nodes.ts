// Real `openlora start` processes inside the NAT tier's namespaces, and CLI runs beside them.
import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, writeFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'

const REPO = resolve(import.meta.dirname, '../..')
const NODE = process.execPath
const MAIN = join(REPO, 'src/node/cli/main.ts')

export interface NodeProc {
  name: string
  ns: string
  dataDir: string
  configFile: string
  peerId: string
  started: { addrs: string[]; reachability: string }
  child: ChildProcess
  logFile: string
}

export interface NodeSpec {
  name: string
  ns: string
  root: string
  /** the whole config file (objects merge over the defaults) */
  config: Record<string, unknown>
  startTimeoutMs?: number
}

export async function startNodeIn(spec: NodeSpec): Promise<NodeProc> {
  const dataDir = join(spec.root, spec.name)
  await mkdir(dataDir, { recursive: true })
  const configFile = join(spec.root, `${spec.name}.json`)
  writeFileSync(configFile, JSON.stringify({ dataDir, ...spec.config }, null, 2))
  return launch(spec.name, spec.ns, dataDir, configFile, spec.root, spec.startTimeoutMs)
}

/** Starts (or restarts) a node from its config file and waits for its `started` line. */
export function launch(
  name: string,
  ns: string,
  dataDir: string,
  configFile: string,
  root: string,
  timeoutMs = 90_000
): Promise<NodeProc> {
  const logFile = join(root, `${name}.log`)
  const log = createWriteStream(logFile, { flags: 'a' })
  const child = spawn('ip', ['netns', 'exec', ns, NODE, MAIN, 'start', '--config', configFile], {
    cwd: REPO,
    env: {
      ...process.env,
      OPENLORA_LOG_FORMAT: 'json',
      OPENLORA_LOG_LEVEL: process.env.NAT_LOG_LEVEL ?? 'info'
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  child.stderr!.pipe(log)
  return new Promise((resolvePromise, reject) => {
    let buf = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`node ${name} did not start within ${timeoutMs} ms (log: ${logFile})`))
    }, timeoutMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`node ${name} exited with ${code} before starting (log: ${logFile})`))
    })
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString()
      const line = buf.split('\n').find((l) => l.startsWith('{"event":"started"'))
      if (!line) return
      clearTimeout(timer)
      const s = JSON.parse(line)
      child.removeAllListeners('exit')
      resolvePromise({ name, ns, dataDir, configFile, peerId: s.peerId, started: s, child, logFile })
    })
  })
}

/** SIGTERM, then SIGKILL if the node has not exited within `ms`. */
export function stopNode(n: NodeProc, ms = 6_000): Promise<void> {
  if (n.child.exitCode !== null || n.child.signalCode !== null) return Promise.resolve()
  return new Promise((res) => {
    const timer = setTimeout(() => n.child.kill('SIGKILL'), ms)
    n.child.once('exit', () => {
      clearTimeout(timer)
      res()
    })
    n.child.kill('SIGTERM')
  })
}

export interface CliResult {
  code: number
  out: string
  err: string
}

/** Runs `openlora ARGS` inside a namespace. */
export function cliIn(ns: string, args: string[], timeoutMs = 120_000): Promise<CliResult> {
  return runIn(ns, [MAIN, ...args], timeoutMs)
}

/** Runs a node script inside a namespace. */
export function runIn(ns: string, args: string[], timeoutMs = 120_000): Promise<CliResult> {
  return new Promise((res) => {
    const child = spawn('ip', ['netns', 'exec', ns, NODE, ...args], {
      cwd: REPO,
      env: { ...process.env, OPENLORA_LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.stderr.on('data', (d) => {
      err += d
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      res({ code: code ?? -1, out, err })
    })
  })
}

/** `openlora peers --json` of a running node, through its admin endpoint in its namespace. */
export async function peersOf(n: NodeProc): Promise<{
  reachability: string
  connections: Array<{ peerId: string; addr: string; type: string }>
  table: Array<{ peerId: string; addrs: string[]; reachability: string | null }>
}> {
  // a CLI process loads the whole program: give a loaded machine time, and one more try
  let r = await cliIn(n.ns, ['peers', '--json', '--config', n.configFile], 60_000)
  if (r.code !== 0) r = await cliIn(n.ns, ['peers', '--json', '--config', n.configFile], 60_000)
  if (r.code !== 0) throw new Error(`openlora peers failed in ${n.ns} (exit ${r.code}): ${r.err || r.out}`)
  return JSON.parse(r.out)
}
