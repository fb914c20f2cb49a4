// The soak's figures (scripts/soak.ts), computed from what the run recorded: per minute (jobs,
// errors, time to first token, faults, nodes up, accepted jobs lost) and per node (memory, fds,
// handles growth after warm-up). Pure functions, so a unit test can check them on made-up runs.
import type { Hex } from 'viem'
import type { JobOutcome } from './driver.ts'
import type { FaultRecord } from './soak-chaos.ts'

export interface ProcessSample {
  /** ms since the nodes were up */
  t: number
  node: number
  pid: number
  rssMiB: number
  heapMiB: number
  handles: number
  fds: number
  connections: number
}

export interface TimedJob {
  t: number
  o: JobOutcome
}

export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? Number.NaN : s[Math.floor(s.length / 2)]!
}
const round1 = (x: number) => Math.round(x * 10) / 10

export interface MinuteRow {
  minute: number
  jobsOk: number
  jobsFailed: number
  /** ok jobs whose entry node was reached through the circuit relay */
  relayedOk: number
  /** failed attempts of the jobs that ended this minute, by code (`relayed:` = through the relay) */
  errors: Record<string, number>
  errorCount: number
  /**
   * of those, PEER_UNREACHABLE (direct or relayed): no serving peer (or entry) could be dialled,
   * so nothing ran or was charged; the faults' own failures, apart from real errors
   */
  unreachable: number
  /** client-side: send → first token frame of the successful attempt */
  ttftMs: { p50: number; p95: number; p99: number }
  /** the serving node's own first-token time (queue + prefill) */
  nodeFirstTokenMs: { p50: number; p95: number }
  latencyMs: { p50: number; p95: number }
  /** faults that began this minute, e.g. "kill node 4 at 12.0 s (recovered in 3.1 s)" */
  faults: string[]
  /** the fewest nodes that answered one sampling round (-1: no round this minute) */
  nodesUpMin: number
  /** accepted jobs of this minute whose payment was lost (must be 0) */
  lostJobs: number
}

export function perMinute(input: {
  minutes: number
  jobs: TimedJob[]
  /** (t, nodes answering) per sampling round */
  up: { t: number; up: number }[]
  faults: FaultRecord[]
  lostJobs: Hex[]
}): MinuteRow[] {
  const lost = new Set(input.lostJobs.map((j) => j.toLowerCase()))
  return Array.from({ length: Math.ceil(input.minutes) }, (_, k) => {
    const within = (t: number) => t >= k * 60_000 && t < (k + 1) * 60_000
    const xs = input.jobs.filter((j) => within(j.t)).map((j) => j.o)
    const ok = xs.filter((o) => o.ok)
    const errors: Record<string, number> = {}
    for (const o of xs) for (const f of o.failures) errors[f] = (errors[f] ?? 0) + 1
    const ttft = ok.map((o) => o.ttftMs).filter((x): x is number => x !== undefined)
    const node = ok.map((o) => o.timings?.firstTokenMs).filter((x): x is number => x !== undefined)
    const lat = ok.map((o) => o.latencyMs)
    const ups = input.up.filter((u) => within(u.t)).map((u) => u.up)
    return {
      minute: k + 1,
      jobsOk: ok.length,
      jobsFailed: xs.length - ok.length,
      relayedOk: ok.filter((o) => o.relayed).length,
      errors,
      errorCount: Object.values(errors).reduce((a, b) => a + b, 0),
      unreachable: Object.entries(errors)
        .filter(([c]) => c.replace(/^relayed:/, '') === 'PEER_UNREACHABLE')
        .reduce((a, [, n]) => a + n, 0),
      ttftMs: { p50: round1(pct(ttft, 50)), p95: round1(pct(ttft, 95)), p99: round1(pct(ttft, 99)) },
      nodeFirstTokenMs: { p50: round1(pct(node, 50)), p95: round1(pct(node, 95)) },
      latencyMs: { p50: round1(pct(lat, 50)), p95: round1(pct(lat, 95)) },
      faults: input.faults.filter((f) => within(f.atMs)).map(describeFault),
      nodesUpMin: ups.length === 0 ? -1 : Math.min(...ups),
      lostJobs: ok.filter((o) => o.jobId !== null && lost.has(o.jobId.toLowerCase())).length
    }
  })
}

export function describeFault(f: FaultRecord): string {
  const what =
    f.kind === 'partition'
      ? `partition (nodes ${f.nodes.join(',')} cut off)`
      : `${f.kind} node ${f.nodes.join(',')}`
  const res = f.reservations ? `, relay reservations ${f.reservations.before} → ${f.reservations.after}` : ''
  const how = f.recovered
    ? `recovered in ${((f.recoveryMs ?? 0) / 1000).toFixed(1)} s`
    : `NOT recovered: ${f.problem}`
  return `${what} at ${(f.atMs / 1000).toFixed(1)} s (${how}${res})`
}

export interface NodeRow {
  node: number
  samples: number
  /** processes this node ran (a restart starts a new one) */
  pids: number
  /**
   * growth is judged on the node's last process, over its own life: warm-up is its first third
   * (at least 20 s), the last third is compared with the middle one; a process that lived less
   * than `minLifeShare` of the run (restarted by a fault) is shown, not judged
   */
  judged: boolean
  rssMiB: { start: number; mid: number; end: number }
  heapMiB: { mid: number; end: number }
  handles: { mid: number; end: number }
  fds: { mid: number; end: number }
  /** the last process's RSS at every sample (MiB, rounded): where growth came from */
  rssSeriesMiB: number[]
  rssGrowthPct: number
  heapGrowthPct: number
  handleGrowth: number
  fdGrowth: number
}

export function perNode(
  samples: ProcessSample[],
  nodes: number,
  runMs: number,
  minLifeShare = 2 / 3
): NodeRow[] {
  return Array.from({ length: nodes }, (_, i) => {
    const all = samples.filter((s) => s.node === i)
    const lastPid = all.at(-1)?.pid
    const mine = all.filter((s) => s.pid === lastPid)
    const from = mine[0]?.t ?? 0
    const to = Math.max(runMs, mine.at(-1)?.t ?? 0)
    const warm = from + Math.max(20_000, (to - from) / 3)
    const late = warm + (to - warm) / 2
    const mid = mine.filter((s) => s.t >= warm && s.t < late)
    const end = mine.filter((s) => s.t >= late)
    const m = (xs: ProcessSample[], k: keyof ProcessSample) => median(xs.map((s) => s[k]))
    // the heap's floor (lowest sample, i.e. right after a collection): garbage between collections
    // is not a leak, live objects that keep piling up are
    const floor = (xs: ProcessSample[]) => Math.min(...xs.map((s) => s.heapMiB))
    return {
      node: i,
      samples: mine.length,
      pids: new Set(all.map((s) => s.pid)).size,
      judged: to - from >= minLifeShare * runMs && mid.length > 0 && end.length > 0,
      rssMiB: { start: m(mine.slice(0, 1), 'rssMiB'), mid: m(mid, 'rssMiB'), end: m(end, 'rssMiB') },
      heapMiB: { mid: floor(mid), end: floor(end) },
      handles: { mid: m(mid, 'handles'), end: m(end, 'handles') },
      fds: { mid: m(mid, 'fds'), end: m(end, 'fds') },
      rssSeriesMiB: mine.map((s) => Math.round(s.rssMiB)),
      rssGrowthPct: (100 * (m(end, 'rssMiB') - m(mid, 'rssMiB'))) / m(mid, 'rssMiB'),
      heapGrowthPct: (100 * (floor(end) - floor(mid))) / floor(mid),
      handleGrowth: m(end, 'handles') - m(mid, 'handles'),
      fdGrowth: m(end, 'fds') - m(mid, 'fds')
    }
  })
}

/** The worst judged node's figure (+∞ when a judged node has no figure; -∞ when none is judged). */
export function worstOf(
  rows: NodeRow[],
  k: 'rssGrowthPct' | 'heapGrowthPct' | 'handleGrowth' | 'fdGrowth'
): number {
  return Math.max(
    ...rows.filter((n) => n.judged).map((n) => (Number.isFinite(n[k]) ? n[k] : Number.POSITIVE_INFINITY))
  )
}
