// The swarm loop's report (what `npm run swarm -- --jobs M` prints and soak runs read) and the
// part of it that follows from the job outcomes alone: counts, failure codes, latency
// percentiles, throughput. Apart from the loop, which starts and stops processes and the chain,
// so the arithmetic over outcomes reads (and changes) on its own.
import type { ChaosEvent } from './chaos.ts'
import type { JobOutcome } from './driver.ts'
import type { Reconciliation } from './reconcile.ts'
import type { RestartClaims, TimeShares } from './timings.ts'

export interface SwarmReport {
  nodes: number
  config: {
    adapters: number
    chaos: boolean
    concurrency: number
    maxNewTokens: number
    attemptTimeoutMs: number
  }
  jobs: { requested: number; ok: number; failed: number; failedReasons: Record<string, number> }
  attempts: {
    total: number
    failovers: number
    failureCodes: Record<string, number>
    /** one message per failure code */
    failureSamples: Record<string, string>
  }
  routedShare: number
  latencyMs: { p50: number; p99: number; mean: number }
  tokens: number
  receiptsVerified: number
  spanAttributed: number
  vouchersClaimed: number
  jobsPerSec: number
  jobsWallMs: number
  timeShares: TimeShares
  chaos: ChaosEvent[]
  /** what each restarted node claimed right after it came back (stored before it died) */
  restartClaims: RestartClaims[]
  settlement: { leftUnclaimedAtStop: number; claimedAfterStop: string; contributorWithdrawals: number }
  reconciliation: Reconciliation
  phasesMs: Record<string, number>
  base: string
  /** every node process started (restarts included) and the chain's RPC, all stopped by now */
  pids: number[]
  rpcUrl: string
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

function count(xs: string[]): Record<string, number> {
  const m: Record<string, number> = {}
  for (const x of xs) m[x] = (m[x] ?? 0) + 1
  return m
}

/** Everything in the report that the job outcomes alone decide. */
export function summarizeJobs(
  requested: number,
  outcomes: JobOutcome[],
  failureSamples: Map<string, string>,
  jobsWallMs: number
): Pick<
  SwarmReport,
  | 'jobs'
  | 'attempts'
  | 'routedShare'
  | 'latencyMs'
  | 'tokens'
  | 'receiptsVerified'
  | 'spanAttributed'
  | 'jobsPerSec'
  | 'jobsWallMs'
> {
  const ok = outcomes.filter((o) => o.ok)
  const failed = outcomes.filter((o) => !o.ok)
  const latencies = ok.map((o) => o.latencyMs)
  return {
    jobs: {
      requested,
      ok: ok.length,
      failed: failed.length,
      failedReasons: count(failed.map((o) => o.failures.at(-1) ?? 'unknown'))
    },
    attempts: {
      total: outcomes.reduce((a, o) => a + o.attempts, 0),
      failovers: outcomes.reduce((a, o) => a + o.failures.length, 0),
      failureCodes: count(outcomes.flatMap((o) => o.failures)),
      failureSamples: Object.fromEntries(failureSamples)
    },
    routedShare: ok.length ? ok.filter((o) => o.routed).length / ok.length : 0,
    latencyMs: {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      mean: ok.length ? ok.reduce((a, o) => a + o.latencyMs, 0) / ok.length : 0
    },
    tokens: ok.reduce((a, o) => a + (o.tokens ?? 0), 0),
    receiptsVerified: ok.length,
    spanAttributed: ok.filter((o) => o.receipt?.body.attribution.method === 'spans').length,
    jobsPerSec: jobsWallMs > 0 ? ok.length / (jobsWallMs / 1000) : 0,
    jobsWallMs
  }
}
