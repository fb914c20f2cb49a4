// Local swarm: N node processes on 127.0.0.1, each with its own data dir and OS-assigned ports,
// joined through the first one (mDNS off unless --mdns, so the join path is the real one).
//
//   npm run swarm -- --nodes N [--exit-when-converged] [--json] [--timeout-ms MS]
//                    [--gpus '[{"name":"H100","memoryMb":81920,"driver":"sim"}]'] [--mdns]
//                    [--keep] [--base-dir DIR]
//
// The whole loop (docs/SWARM.md): with --jobs M it also starts one anvil with the contracts, K
// demo adapters and a demo datanet registered on-chain, nodes on that chain with different
// simulated GPUs, prices and adapter sets, and a client sending M paid jobs through random entry
// peers; then waits for the nodes' claims and reconciles every balance to the wei (exit 1 if not):
//
//   npm run swarm -- --nodes N --jobs M [--adapters K] [--chaos] [--json] [--concurrency C]
//                    [--max-tokens T] [--seed S] [--keep] [--base-dir DIR]
//
// Without --exit-when-converged it shows a live table (peer, addresses, adverts seen, load)
// until Ctrl-C, then stops every node. With it, it exits 0 once every node's PeerTable holds
// every other node's advert and prints {"nodes":N,"convergedMs":…}; after the timeout it exits
// 1 naming the laggards.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LocalSwarm, type PeersAnswer, type SwarmMember } from '../src/node/local-swarm.ts'
import { printReport, runLoopCommand } from './swarm/loop-cli.ts'

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
    jobs: { type: 'string' },
    adapters: { type: 'string', default: '3' },
    chaos: { type: 'boolean', default: false },
    concurrency: { type: 'string' },
    'max-tokens': { type: 'string' },
    seed: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false }
  }
})
if (values.help) {
  console.log(
    'npm run swarm -- --nodes N [--exit-when-converged] [--json] [--timeout-ms MS] [--gpus JSON] [--mdns] [--keep] [--base-dir DIR]\n' +
      'npm run swarm -- --nodes N --jobs M [--adapters K] [--chaos] [--json] [--concurrency C] [--max-tokens T] [--seed S] [--keep] [--base-dir DIR]'
  )
  process.exit(0)
}
const n = Number(values.nodes)
if (!Number.isInteger(n) || n < 1 || n > 64) {
  console.error(`--nodes must be an integer 1..64, got ${values.nodes}`)
  process.exit(2)
}
if (values.jobs !== undefined) {
  process.exit(await runLoopCommand({ ...values, nodes: n }, printReport))
}
const timeoutMs = Number(values['timeout-ms'] ?? 30_000 + n * 3_000)
const exitWhenConverged = values['exit-when-converged']
const json = values.json
const base = values['base-dir'] ?? mkdtempSync(join(tmpdir(), 'openlora-swarm-'))
const info = (msg: string): void => {
  if (!json) console.error(msg)
}
const set = [values.gpus ? 'hardware.detect=false' : 'hardware.detect=true']
if (values.gpus) set.push(`hardware.gpus=${values.gpus}`)
const swarm = new LocalSwarm({ base, set, mdns: values.mdns })
const t0 = Date.now()
let upAt = 0

async function stopAll(): Promise<void> {
  await swarm.stop()
  if (!values.keep && !values['base-dir']) rmSync(base, { recursive: true, force: true })
}

function render(state: Map<SwarmMember, PeersAnswer | null>, converged: boolean): void {
  const rows = [['#', 'peer', 'tcp address', 'conns', 'adverts seen', 'load seen (queue/free)']]
  for (const m of swarm.members) {
    const s = state.get(m)
    const t = s?.table ?? []
    rows.push([
      String(m.i),
      m.peerId ?? '?',
      m.addrs.find((a) => !a.includes('/ws'))?.replace(/\/p2p\/.*/, '') ?? '-',
      s ? String(s.connections.length) : 'down',
      s ? `${t.length}/${swarm.members.length - 1}` : '-',
      s ? `${t.reduce((a, x) => a + x.queueDepth, 0)}/${t.reduce((a, x) => a + x.freeSlots, 0)}` : '-'
    ])
  }
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  const text = rows.map((r) => r.map((x, c) => x.padEnd(w[c]!)).join('  ')).join('\n')
  const head = `${n} nodes, ${((Date.now() - t0) / 1000).toFixed(1)} s, ${converged ? 'converged' : 'converging'}`
  process.stdout.write(`\x1b[2J\x1b[H${head}; Ctrl-C stops all (logs: ${base})\n\n${text}\n`)
}

process.on('SIGINT', () => void stopAll().then(() => process.exit(130)))
process.on('SIGTERM', () => void stopAll().then(() => process.exit(143)))

try {
  await swarm.start(n)
  upAt = Date.now()
  info(`${n} nodes up after ${upAt - t0} ms (joined through ${swarm.members[0]!.addrs[0]})`)
} catch (err) {
  console.error(`swarm: ${(err as Error).message}`)
  await stopAll()
  process.exit(1)
}

let convergedAt: number | undefined
for (;;) {
  const state = await swarm.poll()
  const lag = swarm.laggards(state)
  if (lag.length === 0 && convergedAt === undefined) convergedAt = Date.now()
  if (exitWhenConverged) {
    if (convergedAt !== undefined) {
      await stopAll()
      const left = swarm.members.filter((m) => !m.exited).length
      console.log(
        JSON.stringify({
          nodes: n,
          convergedMs: convergedAt - t0,
          // process start-up (module loading on a shared 2-core machine) dominates convergedMs
          startupMs: upAt - t0,
          convergedAfterStartupMs: Math.max(0, convergedAt - upAt),
          pids: swarm.members.map((m) => m.child.pid),
          processesLeft: left
        })
      )
      process.exit(left === 0 ? 0 : 1)
    }
    // the timeout starts once every node is up: start-up time depends on the machine's load
    if (Date.now() - upAt > timeoutMs) {
      console.error(`swarm: not converged ${timeoutMs} ms after start-up; laggards:\n  ${lag.join('\n  ')}`)
      if (json) console.log(JSON.stringify({ nodes: n, convergedMs: null, laggards: lag }))
      await stopAll()
      process.exit(1)
    }
  } else if (!json) {
    render(state, lag.length === 0)
  }
  await new Promise((r) => setTimeout(r, exitWhenConverged ? 100 : 1_000))
}
