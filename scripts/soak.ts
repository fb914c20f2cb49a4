// Soak: the whole loop (src/node/swarm/loop.ts: anvil, N node processes, paid jobs through random
// entry peers, claims, reconciliation to the wei) kept busy for --minutes, with adapter churn (more
// adapters than LoRA slots, each node holding only some, so jobs evict adapters and fetch missing
// ones over the adapter exchange) and, unless --no-chaos, faults on a clock (soak-chaos.ts): kill -9
// and restart of a serving node, a network partition, a restart of the circuit relay (node 0, which
// a share of the jobs go through), each followed by a check that the swarm recovered. Each node's
// RSS, V8 heap, live handles (libuv resources) and open file descriptors are sampled. Fails (exit 1)
// on growth beyond the bounds after warm-up, a fault the swarm did not recover from, an accepted job
// whose payment was lost, or any payment that does not reconcile.
//
//   npm run soak -- [--minutes M] [--nodes N] [--adapters K] [--concurrency C] [--sample-sec S]
//                   [--no-chaos] [--chaos-rounds R] [--partition-sec P] [--relayed-share F]
//                   [--rss-bound-pct P] [--heap-bound-pct P] [--fd-bound N] [--json] [--keep]
//
// Bounds (defaults from the hardening issue): RSS and heap growth after warm-up (the first third
// of a process's life, at least 20 s) ≤ 10 % and ≤ 25 %, open fds and handles growth ≤ 16
// (connections come and go; a leak grows without end). Growth = last third's median over the
// middle third's (the heap: sampled right after a full collection, its lowest sample in each), judged on nodes
// whose last process lived at least two thirds of the run (the ones no fault restarted).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { adminRequest } from '../src/node/admin.ts'
import type { LocalSwarm } from '../src/node/local-swarm.ts'
import { runSwarmLoop } from '../src/node/swarm/loop.ts'
import { faultRotation, TimedChaos } from '../src/node/swarm/soak-chaos.ts'
import {
  describeFault,
  type ProcessSample,
  perMinute,
  perNode,
  type TimedJob,
  worstOf
} from '../src/node/swarm/soak-report.ts'
import { benchArgs } from './bench/args.ts'
import { benchMachine } from './bench/machine.ts'

const USAGE =
  'npm run soak -- [--minutes M] [--nodes N] [--adapters K] [--concurrency C] [--sample-sec S] [--no-chaos] [--chaos-rounds R] [--partition-sec P] [--relayed-share F] [--rss-bound-pct P] [--heap-bound-pct P] [--fd-bound N] [--json] [--keep]'
const args = benchArgs(USAGE, {
  minutes: { type: 'string', default: '10' },
  nodes: { type: 'string', default: '5' },
  adapters: { type: 'string', default: '6' },
  concurrency: { type: 'string' },
  'sample-sec': { type: 'string' },
  chaos: { type: 'boolean', default: true },
  'chaos-rounds': { type: 'string' },
  'partition-sec': { type: 'string' },
  'relayed-share': { type: 'string', default: '0.1' },
  'rss-bound-pct': { type: 'string', default: '10' },
  'heap-bound-pct': { type: 'string', default: '25' },
  'fd-bound': { type: 'string', default: '16' },
  json: { type: 'boolean' },
  keep: { type: 'boolean' }
})
const num = (k: keyof typeof args, min: number, max: number): number => {
  const v = Number(args[k])
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`--${k} must be a number in ${min}..${max}, got ${args[k]}`)
    process.exit(2)
  }
  return v
}
const minutes = num('minutes', 0.25, 24 * 60)
const chaosOn = args.chaos === true
// with chaos, node 0 is the relay and node N-1 the one killed: at least one node lives the whole
// run, so memory growth has a node to be judged on
const nodes = num('nodes', chaosOn ? 3 : 2, 16)
const adapters = num('adapters', 3, 64)
const durationMs = minutes * 60_000
const sampleMs =
  (args['sample-sec'] ? num('sample-sec', 1, 600) : Math.max(2, Math.min(30, minutes * 3))) * 1000
// one round of the three faults per 5 minutes (at least one): a 10-minute run has each twice
const rounds = args['chaos-rounds'] ? num('chaos-rounds', 1, 100) : Math.max(1, Math.floor(minutes / 5))
// long enough for gossip and jobs to notice (adverts every 2 s, a job's deadline 15 s), short
// against the advert TTL (120 s) so the tables keep the far side
const partitionMs =
  (args['partition-sec'] ? num('partition-sec', 1, 110) : Math.min(30, Math.max(8, minutes * 3))) * 1000
const relayedShare = num('relayed-share', 0, 1)
const bounds = {
  rssPct: num('rss-bound-pct', 0, 1000),
  heapPct: num('heap-bound-pct', 0, 1000),
  fds: num('fd-bound', 0, 1e6)
}
const log = (m: string) => {
  if (!args.json) console.error(m)
}

const samples: ProcessSample[] = []
const upRounds: { t: number; up: number }[] = []
let t0 = 0
let timer: NodeJS.Timeout | undefined

async function sample(swarm: LocalSwarm): Promise<void> {
  const t = Date.now() - t0
  const got = await Promise.all(
    swarm.members
      .filter((m) => !m.exited)
      .map(async (m) => {
        const p = await adminRequest<{
          pid: number
          rssBytes: number
          heapUsedBytes: number
          activeResources: number
          connections: number
        }>(m.dir, '/process/collect', 5_000, {}).catch(() => null) // heap after a full collection
        if (!p) return false
        let fds = -1
        try {
          fds = readdirSync(`/proc/${p.pid}/fd`).length
        } catch {} // not Linux: fds stay unknown (-1) and are not judged
        samples.push({
          t: Date.now() - t0,
          node: m.i,
          pid: p.pid,
          rssMiB: p.rssBytes / 2 ** 20,
          heapMiB: p.heapUsedBytes / 2 ** 20,
          handles: p.activeResources,
          fds,
          connections: p.connections
        })
        return true
      })
  )
  upRounds.push({ t, up: got.filter(Boolean).length })
}

const base = mkdtempSync(join(tmpdir(), 'openlora-soak-'))
const jobsAt: TimedJob[] = []
let chaos: TimedChaos | undefined
log(
  `soak: ${nodes} nodes, ${adapters} adapters, ${minutes} min, sampling every ${sampleMs / 1000} s, ` +
    `${chaosOn ? `chaos: ${rounds} round(s) of kill/partition (${partitionMs / 1000} s)/relay restart, ${relayedShare * 100} % of attempts through the relay` : 'no chaos'} (${base})`
)
let report: Awaited<ReturnType<typeof runSwarmLoop>>
try {
  report = await runSwarmLoop({
    base,
    nodes,
    jobs: Number.MAX_SAFE_INTEGER,
    adapters,
    chaos: false,
    durationMs,
    ...(args.concurrency ? { concurrency: num('concurrency', 1, 64) } : {}),
    // 2 LoRA slots per node (slot 0 is the base) for K adapters: every job may evict one
    set: ['infer.slots=3', 'infer.warmBudgetMb=1'],
    ...(chaosOn
      ? {
          setFor: (i: number) => (i === 0 ? ['network.relay.server=true'] : []),
          relay: { node: 0, relayedShare },
          faults: (swarm: LocalSwarm) => {
            chaos = new TimedChaos(swarm, {
              durationMs,
              faults: faultRotation(rounds),
              killVictim: nodes - 1,
              relay: 0,
              partitionMs,
              downMs: 2_000,
              recoverTimeoutMs: 60_000,
              t0,
              log
            })
            return chaos
          }
        }
      : {}),
    log,
    onNodesUp: (swarm) => {
      t0 = Date.now()
      void sample(swarm)
      timer = setInterval(() => void sample(swarm), sampleMs)
    },
    onJob: (o) => jobsAt.push({ t: Date.now() - t0, o })
  })
} finally {
  clearInterval(timer)
  if (!args.keep) rmSync(base, { recursive: true, force: true })
}

const rec = report.reconciliation
const faults = chaos?.records ?? []
const nodeRows = perNode(samples, nodes, durationMs)
const minuteRows = perMinute({ minutes, jobs: jobsAt, up: upRounds, faults, lostJobs: rec.lostJobs })
const worst = (k: Parameters<typeof worstOf>[1]) => worstOf(nodeRows, k)
const failedUnclear = jobsAt.filter(
  (j) => !j.o.ok && (j.o.failures.length === 0 || j.o.failures.every((f) => f.endsWith('UNKNOWN_ERROR')))
).length
const goals = [
  {
    name: 'rss_growth_after_warmup_pct',
    value: worst('rssGrowthPct'),
    target: `<= ${bounds.rssPct}`,
    met: worst('rssGrowthPct') <= bounds.rssPct
  },
  {
    name: 'heap_growth_after_warmup_pct',
    value: worst('heapGrowthPct'),
    target: `<= ${bounds.heapPct}`,
    met: worst('heapGrowthPct') <= bounds.heapPct
  },
  {
    name: 'fd_growth',
    value: worst('fdGrowth'),
    target: `<= ${bounds.fds}`,
    met: worst('fdGrowth') <= bounds.fds
  },
  {
    name: 'handle_growth',
    value: worst('handleGrowth'),
    target: `<= ${bounds.fds}`,
    met: worst('handleGrowth') <= bounds.fds
  },
  {
    name: 'nodes_judged_for_growth',
    value: nodeRows.filter((n) => n.judged).length,
    target: '>= 1',
    met: nodeRows.some((n) => n.judged)
  },
  { name: 'reconciled_to_the_wei', value: rec.ok, target: 'true', met: rec.ok },
  { name: 'accepted_jobs_lost', value: rec.lostJobs.length, target: '0', met: rec.lostJobs.length === 0 },
  { name: 'jobs_failed_without_a_clear_error', value: failedUnclear, target: '0', met: failedUnclear === 0 },
  { name: 'jobs_served', value: report.jobs.ok, target: '> 0', met: report.jobs.ok > 0 },
  ...(chaosOn
    ? [
        {
          name: 'faults_run',
          value: faults.length,
          target: `>= ${chaos?.scheduled}`,
          met: faults.length >= (chaos?.scheduled ?? 1)
        },
        {
          name: 'faults_recovered',
          value: faults.filter((f) => f.recovered).length,
          target: `= ${faults.length}`,
          met: faults.every((f) => f.recovered)
        },
        {
          // each node the faults hit served jobs again after it recovered (a dead node would not)
          name: 'faulted_nodes_serving_again',
          value: faults.filter((f) => servedAfter(f) > 0).length,
          target: `= ${faults.length}`,
          met: faults.every((f) => servedAfter(f) > 0)
        },
        {
          name: 'relayed_jobs_served',
          value: jobsAt.filter((j) => j.o.ok && j.o.relayed).length,
          target: relayedShare > 0 ? '> 0' : '>= 0',
          met: relayedShare === 0 || jobsAt.some((j) => j.o.ok && j.o.relayed)
        }
      ]
    : [])
]
/** jobs served by a fault's nodes after it recovered (the relay restart: jobs through the relay) */
function servedAfter(f: (typeof faults)[number]): number {
  if (f.recoveredAtMs === undefined) return 0
  return jobsAt.filter(
    (j) =>
      j.t >= f.recoveredAtMs! &&
      j.o.ok &&
      (f.kind === 'relay' ? j.o.relayed || j.o.servedBy === f.nodes[0] : f.nodes.includes(j.o.servedBy ?? -1))
  ).length
}
const out = {
  bench: 'soak',
  machine: benchMachine({ ort: false }),
  config: {
    minutes,
    nodes,
    adapters,
    slotsPerNode: 2,
    sampleSec: sampleMs / 1000,
    concurrency: report.config.concurrency,
    chaos: chaosOn
      ? { rounds, partitionSec: partitionMs / 1000, relayNode: 0, killVictim: nodes - 1, relayedShare }
      : false,
    bounds
  },
  results: {
    jobs: report.jobs,
    jobsPerSec: report.jobsPerSec,
    latencyMs: report.latencyMs,
    attempts: report.attempts,
    perMinute: minuteRows,
    faults: faults.map((f) => ({ ...f, servedAfter: servedAfter(f) })),
    perNode: nodeRows,
    reconciliation: {
      ok: rec.ok,
      problems: rec.problems,
      receipts: rec.receipts,
      lostJobs: rec.lostJobs,
      paidWithoutReceipt: rec.paidWithoutReceipt,
      claimedTotal: rec.claimedTotal,
      amountDueTotal: rec.amountDueTotal
    }
  },
  goals
}
if (args.json) console.log(JSON.stringify(out))
else {
  console.log(
    `jobs ok ${report.jobs.ok}, failed ${report.jobs.failed} (${JSON.stringify(report.jobs.failedReasons)})`
  )
  // errors = failed attempts, unreach = those of them PEER_UNREACHABLE (nothing ran or was charged)
  console.log('min  ok/min  failed  errors  unreach  relayed  TTFT p50/p95/p99 ms   nodes up  lost  faults')
  for (const r of minuteRows)
    console.log(
      `${String(r.minute).padStart(3)}  ${String(r.jobsOk).padStart(6)}  ${String(r.jobsFailed).padStart(6)}  ${String(r.errorCount).padStart(6)}  ${String(r.unreachable).padStart(7)}  ${String(r.relayedOk).padStart(7)}  ${`${r.ttftMs.p50}/${r.ttftMs.p95}/${r.ttftMs.p99}`.padStart(19)}  ${String(r.nodesUpMin).padStart(8)}  ${String(r.lostJobs).padStart(4)}  ${r.faults.join('; ')}`
    )
  for (const f of faults) console.log(`fault: ${describeFault(f)}, ${servedAfter(f)} jobs served after`)
  for (const n of nodeRows.filter((x) => !x.judged && !Number.isFinite(x.rssGrowthPct)))
    console.log(
      `node ${n.node} (restarted ${n.pids - 1}×, its last process too short to judge): RSS ${n.rssSeriesMiB.join(' → ')} MiB`
    )
  for (const n of nodeRows.filter((x) => x.judged || Number.isFinite(x.rssGrowthPct)))
    console.log(
      `node ${n.node}${n.judged ? '' : ' (restarted: shown, not judged)'}: RSS ${n.rssMiB.start.toFixed(0)} → ${n.rssMiB.mid.toFixed(0)} → ${n.rssMiB.end.toFixed(0)} MiB (${n.rssGrowthPct.toFixed(1)} %), heap ${n.heapMiB.mid.toFixed(0)} → ${n.heapMiB.end.toFixed(0)} MiB, handles ${n.handles.mid} → ${n.handles.end}, fds ${n.fds.mid} → ${n.fds.end}`
    )
  for (const g of goals) console.log(`${g.met ? 'ok  ' : 'FAIL'} ${g.name}: ${g.value} (${g.target})`)
}
process.exit(goals.every((g) => g.met) ? 0 : 1)
