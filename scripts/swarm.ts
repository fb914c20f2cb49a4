// Local swarm: N node processes on 127.0.0.1, each with its own data dir and OS-assigned ports,
// joined through the first one (mDNS off unless --mdns, so the join path is the real one).
//
//   npm run swarm -- --nodes N [--exit-when-converged] [--json] [--timeout-ms MS]
//                    [--gpus '[{"name":"H100","memoryMb":81920,"driver":"sim"}]'] [--mdns] [--keep]
//
// Without --exit-when-converged it shows a live table (peer, addresses, adverts seen, load)
// until Ctrl-C, then stops every node. With it, it exits 0 once every node's PeerTable holds
// every other node's advert and prints {"nodes":N,"convergedMs":…}; after the timeout it exits
// 1 naming the laggards.
import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { adminRequest } from '../src/node/admin.ts'

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    'exit-when-converged': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'timeout-ms': { type: 'string' },
    gpus: { type: 'string' },
    mdns: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'base-dir': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false }
  }
})
if (values.help) {
  console.log(
    'npm run swarm -- --nodes N [--exit-when-converged] [--json] [--timeout-ms MS] [--gpus JSON] [--mdns] [--keep] [--base-dir DIR]'
  )
  process.exit(0)
}
const n = Number(values.nodes)
if (!Number.isInteger(n) || n < 1 || n > 64) {
  console.error(`--nodes must be an integer 1..64, got ${values.nodes}`)
  process.exit(2)
}
const timeoutMs = Number(values['timeout-ms'] ?? 30_000 + n * 3_000)
const exitWhenConverged = values['exit-when-converged']
const json = values.json
const base = values['base-dir'] ?? mkdtempSync(join(tmpdir(), 'openlora-swarm-'))
const info = (msg: string): void => {
  if (!json) console.error(msg)
}

interface Member {
  i: number
  dir: string
  child: ChildProcess
  peerId?: string
  addrs: string[]
  exited: boolean
}
const members: Member[] = []
const t0 = Date.now()

function spawnNode(i: number, bootstrap: string | undefined): Promise<Member> {
  const dir = join(base, `node-${i}`)
  const args = [
    'src/node/cli/main.ts',
    'start',
    '--data-dir',
    dir,
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
    '--listen',
    '/ip4/127.0.0.1/tcp/0/ws',
    '--set',
    'log.format=json',
    '--set',
    `hardware.detect=${values.gpus ? 'false' : 'true'}`
  ]
  if (!values.mdns) args.push('--no-mdns')
  if (bootstrap) args.push('--bootstrap', bootstrap)
  if (values.gpus) args.push('--set', `hardware.gpus=${values.gpus}`)
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const m: Member = { i, dir, child, addrs: [], exited: false }
  members.push(m)
  // each node's log goes to its own file, so the live table stays readable
  child.stderr!.pipe(createWriteStream(join(base, `node-${i}.log`)))
  child.on('exit', () => {
    m.exited = true
  })
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! })
    rl.on('line', (line) => {
      try {
        const ev = JSON.parse(line) as { event?: string; peerId: string; addrs: string[] }
        if (ev.event === 'started') {
          m.peerId = ev.peerId
          m.addrs = ev.addrs
          resolve(m)
        }
      } catch {}
    })
    child.on('exit', (code) =>
      reject(
        new Error(`node ${i} exited with code ${code} before starting (log: ${join(base, `node-${i}.log`)})`)
      )
    )
  })
}

let upAt = 0
let stopping: Promise<void> | undefined
function stopAll(): Promise<void> {
  stopping ??= (async () => {
    for (const m of members) if (!m.exited) m.child.kill('SIGTERM')
    const until = Date.now() + 6_000
    while (members.some((m) => !m.exited) && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
    for (const m of members) if (!m.exited) m.child.kill('SIGKILL')
    if (!values.keep && !values['base-dir']) rmSync(base, { recursive: true, force: true })
  })()
  return stopping
}

interface PeersAnswer {
  connections: unknown[]
  table: { peerId: string; queueDepth: number; freeSlots: number }[]
}

async function poll(): Promise<Map<Member, PeersAnswer | null>> {
  const out = new Map<Member, PeersAnswer | null>()
  await Promise.all(
    members.map(async (m) => {
      out.set(m, await adminRequest<PeersAnswer>(m.dir, '/peers', 2_000).catch(() => null))
    })
  )
  return out
}

function laggards(state: Map<Member, PeersAnswer | null>): string[] {
  const ids = members.map((m) => m.peerId!)
  const out: string[] = []
  for (const m of members) {
    const seen = new Set(state.get(m)?.table.map((t) => t.peerId) ?? [])
    const missing = ids.filter((id) => id !== m.peerId && !seen.has(id))
    if (missing.length > 0)
      out.push(
        `node ${m.i} (${m.peerId}) lacks ${missing.length}: ${missing.map((x) => x.slice(-8)).join(',')}`
      )
  }
  return out
}

function render(state: Map<Member, PeersAnswer | null>, converged: boolean): void {
  const rows = [['#', 'peer', 'tcp address', 'conns', 'adverts seen', 'load (queue/free)']]
  for (const m of members) {
    const s = state.get(m)
    const self = s?.table ?? []
    rows.push([
      String(m.i),
      m.peerId ?? '?',
      m.addrs.find((a) => !a.includes('/ws'))?.replace(/\/p2p\/.*/, '') ?? '-',
      s ? String(s.connections.length) : 'down',
      s ? `${self.length}/${members.length - 1}` : '-',
      s ? `${self.reduce((a, t) => a + t.queueDepth, 0)}/${self.reduce((a, t) => a + t.freeSlots, 0)}` : '-'
    ])
  }
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  const text = rows.map((r) => r.map((x, c) => x.padEnd(w[c]!)).join('  ')).join('\n')
  process.stdout.write(
    `\x1b[2J\x1b[H${n} nodes, ${((Date.now() - t0) / 1000).toFixed(1)} s, ${converged ? 'converged' : 'converging'} — Ctrl-C stops all (logs: ${base})\n\n${text}\n`
  )
}

process.on('SIGINT', () => void stopAll().then(() => process.exit(130)))
process.on('SIGTERM', () => void stopAll().then(() => process.exit(143)))

try {
  const first = await spawnNode(0, undefined)
  const boot = first.addrs.find((a) => a.includes('/tcp/') && !a.includes('/ws'))
  info(`node 0 up: ${boot}`)
  // the rest start together: joining at once is what a swarm has to survive
  await Promise.all(Array.from({ length: n - 1 }, (_, k) => spawnNode(k + 1, boot)))
  upAt = Date.now()
  info(`${n} nodes up after ${upAt - t0} ms`)
} catch (err) {
  console.error(`swarm: ${(err as Error).message}`)
  await stopAll()
  process.exit(1)
}

let convergedAt: number | undefined
for (;;) {
  const state = await poll()
  const lag = laggards(state)
  if (lag.length === 0 && convergedAt === undefined) convergedAt = Date.now()
  if (exitWhenConverged) {
    if (convergedAt !== undefined) {
      const convergedMs = convergedAt - t0
      await stopAll()
      const left = members.filter((m) => !m.exited).length
      console.log(
        JSON.stringify({
          nodes: n,
          convergedMs,
          // process start-up (module loading on a shared 2-core machine) dominates convergedMs
          startupMs: upAt - t0,
          convergedAfterStartupMs: Math.max(0, convergedAt - upAt),
          pids: members.map((m) => m.child.pid),
          processesLeft: left
        })
      )
      process.exit(left === 0 ? 0 : 1)
    }
    if (Date.now() - t0 > timeoutMs) {
      console.error(`swarm: not converged after ${timeoutMs} ms; laggards:\n  ${lag.join('\n  ')}`)
      if (json) console.log(JSON.stringify({ nodes: n, convergedMs: null, laggards: lag }))
      await stopAll()
      process.exit(1)
    }
  } else if (!json) {
    render(state, lag.length === 0)
  }
  await new Promise((r) => setTimeout(r, exitWhenConverged ? 100 : 1_000))
}
