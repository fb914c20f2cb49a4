// Soak: the whole loop (src/node/swarm/loop.ts: anvil, N node processes, paid jobs through random
// entry peers, claims, reconciliation to the wei) kept busy for --minutes, with adapter churn (more
// adapters than LoRA slots, each node holding only some, so jobs evict adapters and fetch missing
// ones over the adapter exchange), while each node's RSS, V8 heap, live handles (libuv resources)
// and open file descriptors are sampled. Fails (exit 1) on growth beyond the bounds after warm-up,
// or on any payment that does not reconcile.
//
//   npm run soak -- [--minutes M] [--nodes N] [--adapters K] [--concurrency C] [--sample-sec S]
//                   [--rss-bound-pct P] [--heap-bound-pct P] [--fd-bound N] [--json] [--keep]
//
// Bounds (defaults from the hardening issue): RSS and heap growth after warm-up (the first third
// of the run, at least 20 s) ≤ 10 % and ≤ 25 %, open fds and handles growth ≤ 16 (connections
// come and go; a leak grows without end). Growth = last third's median over the middle third's
// (the heap: its lowest sample in each, what survives collection).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { adminRequest } from '../src/node/admin.ts'
import type { LocalSwarm } from '../src/node/local-swarm.ts'
import type { JobOutcome } from '../src/node/swarm/driver.ts'
import { runSwarmLoop } from '../src/node/swarm/loop.ts'
import { benchArgs } from './bench/args.ts'
import { benchMachine } from './bench/machine.ts'

const args = benchArgs(
  'npm run soak -- [--minutes M] [--nodes N] [--adapters K] [--concurrency C] [--sample-sec S] [--rss-bound-pct P] [--heap-bound-pct P] [--fd-bound N] [--json] [--keep]',
  {
    minutes: { type: 'string', default: '10' },
    nodes: { type: 'string', default: '3' },
    adapters: { type: 'string', default: '6' },
    concurrency: { type: 'string' },
    'sample-sec': { type: 'string' },
    'rss-bound-pct': { type: 'string', default: '10' },
    'heap-bound-pct': { type: 'string', default: '25' },
    'fd-bound': { type: 'string', default: '16' },
    json: { type: 'boolean' },
    keep: { type: 'boolean' }
  }
)
const num = (k: keyof typeof args, min: number, max: number): number => {
  const v = Number(args[k])
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`--${k} must be a number in ${min}..${max}, got ${args[k]}`)
    process.exit(2)
  }
  return v
}
const minutes = num('minutes', 0.25, 24 * 60)
const nodes = num('nodes', 2, 16)
const adapters = num('adapters', 3, 64)
const sampleMs =
  (args['sample-sec'] ? num('sample-sec', 1, 600) : Math.max(2, Math.min(30, minutes * 3))) * 1000
const bounds = {
  rssPct: num('rss-bound-pct', 0, 1000),
  heapPct: num('heap-bound-pct', 0, 1000),
  fds: num('fd-bound', 0, 1e6)
}
const log = (m: string) => {
  if (!args.json) console.error(m)
}

interface Sample {
  t: number
  node: number
  pid: number
  rssMiB: number
  heapMiB: number
  handles: number
  fds: number
  connections: number
}
const samples: Sample[] = []
let t0 = 0
let timer: NodeJS.Timeout | undefined

async function sample(swarm: LocalSwarm): Promise<void> {
  await Promise.all(
    swarm.members
      .filter((m) => !m.exited)
      .map(async (m) => {
        const p = await adminRequest<{
          pid: number
          rssBytes: number
          heapUsedBytes: number
          activeResources: number
          connections: number
        }>(m.dir, '/process', 5_000).catch(() => null)
        if (!p) return
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
      })
  )
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? Number.NaN : s[Math.floor(s.length / 2)]!
}
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

const base = mkdtempSync(join(tmpdir(), 'openlora-soak-'))
const jobsAt: { t: number; o: JobOutcome }[] = []
const durationMs = minutes * 60_000
log(
  `soak: ${nodes} nodes, ${adapters} adapters, ${minutes} min, sampling every ${sampleMs / 1000} s (${base})`
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

// per node: warm-up is the first third (at least 20 s); compare the last third with the middle
const warm = Math.max(20_000, durationMs / 3)
const late = warm + (durationMs - warm) / 2
const perNode = Array.from({ length: nodes }, (_, i) => {
  const mine = samples.filter((s) => s.node === i)
  const mid = mine.filter((s) => s.t >= warm && s.t < late)
  const end = mine.filter((s) => s.t >= late)
  const m = (xs: Sample[], k: keyof Sample) => median(xs.map((s) => s[k] as number))
  // the heap's floor (lowest sample, i.e. right after a collection): garbage between collections
  // is not a leak, live objects that keep piling up are
  const floor = (xs: Sample[]) => Math.min(...xs.map((s) => s.heapMiB))
  return {
    node: i,
    samples: mine.length,
    rssMiB: { start: m(mine.slice(0, 1), 'rssMiB'), mid: m(mid, 'rssMiB'), end: m(end, 'rssMiB') },
    heapMiB: { mid: floor(mid), end: floor(end) },
    handles: { mid: m(mid, 'handles'), end: m(end, 'handles') },
    fds: { mid: m(mid, 'fds'), end: m(end, 'fds') },
    rssGrowthPct: (100 * (m(end, 'rssMiB') - m(mid, 'rssMiB'))) / m(mid, 'rssMiB'),
    heapGrowthPct: (100 * (floor(end) - floor(mid))) / floor(mid),
    handleGrowth: m(end, 'handles') - m(mid, 'handles'),
    fdGrowth: m(end, 'fds') - m(mid, 'fds')
  }
})
const perMinute = Array.from({ length: Math.ceil(minutes) }, (_, k) => {
  const xs = jobsAt.filter((j) => j.t >= k * 60_000 && j.t < (k + 1) * 60_000).map((j) => j.o)
  const ok = xs.filter((o) => o.ok)
  const ttft = ok.map((o) => o.timings?.firstTokenMs).filter((x): x is number => x !== undefined)
  return {
    minute: k + 1,
    ok: ok.length,
    failed: xs.length - ok.length,
    ttftP50Ms: pct(ttft, 50),
    ttftP99Ms: pct(ttft, 99)
  }
})
const worst = (k: 'rssGrowthPct' | 'heapGrowthPct' | 'handleGrowth' | 'fdGrowth') =>
  Math.max(...perNode.map((n) => (Number.isFinite(n[k]) ? n[k] : Number.POSITIVE_INFINITY)))
const rec = report.reconciliation
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
  { name: 'reconciled_to_the_wei', value: rec.ok, target: 'true', met: rec.ok },
  { name: 'jobs_served', value: report.jobs.ok, target: '> 0', met: report.jobs.ok > 0 }
]
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
    bounds
  },
  results: {
    jobs: report.jobs,
    jobsPerSec: report.jobsPerSec,
    latencyMs: report.latencyMs,
    perMinute,
    perNode,
    reconciliation: {
      ok: rec.ok,
      problems: rec.problems,
      receipts: rec.receipts,
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
  for (const n of perNode)
    console.log(
      `node ${n.node}: RSS ${n.rssMiB.start.toFixed(0)} → ${n.rssMiB.mid.toFixed(0)} → ${n.rssMiB.end.toFixed(0)} MiB (${n.rssGrowthPct.toFixed(1)} %), heap ${n.heapMiB.mid.toFixed(0)} → ${n.heapMiB.end.toFixed(0)} MiB, handles ${n.handles.mid} → ${n.handles.end}, fds ${n.fds.mid} → ${n.fds.end}`
    )
  for (const g of goals) console.log(`${g.met ? 'ok  ' : 'FAIL'} ${g.name}: ${g.value} (${g.target})`)
}
process.exit(goals.every((g) => g.met) ? 0 : 1)
