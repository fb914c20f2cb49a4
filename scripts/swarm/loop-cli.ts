// `npm run swarm -- --jobs M …`: flags → runSwarmLoop, progress on stderr, the report on stdout
// (a table, or with --json one JSON object on the last line). Exit 0 only when the balances
// reconcile to the wei; 1 when they do not or the run failed; 2 for bad flags.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { runSwarmLoop } from '../../src/node/swarm/loop.ts'
import type { SwarmReport } from '../../src/node/swarm/report.ts'

export interface LoopFlags {
  nodes: number
  jobs?: string
  adapters?: string
  chaos?: boolean
  json?: boolean
  concurrency?: string
  'max-tokens'?: string
  seed?: string
  keep?: boolean
  'base-dir'?: string
}

function int(v: string | undefined, name: string, min: number, max: number, dflt?: number): number {
  if (v === undefined && dflt !== undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n < min || n > max)
    throw new RangeError(`--${name} must be an integer ${min}..${max}, got ${v}`)
  return n
}

export async function runLoopCommand(
  f: LoopFlags,
  print: (r: SwarmReport, json: boolean) => void
): Promise<number> {
  let jobs: number
  let adapters: number
  let concurrency: number | undefined
  let maxNewTokens: number | undefined
  let seed: number | undefined
  try {
    jobs = int(f.jobs, 'jobs', 1, 100_000)
    adapters = int(f.adapters, 'adapters', 1, 32, 3)
    concurrency = f.concurrency === undefined ? undefined : int(f.concurrency, 'concurrency', 1, 256)
    maxNewTokens = f['max-tokens'] === undefined ? undefined : int(f['max-tokens'], 'max-tokens', 8, 96)
    seed = f.seed === undefined ? undefined : int(f.seed, 'seed', 0, 2 ** 31)
    if (f.nodes < 2)
      throw new RangeError('--nodes must be at least 2 with --jobs (jobs are routed between nodes)')
    // a fresh chain each run: a data dir holding vouchers of an earlier run would claim them again
    const dir = f['base-dir']
    if (dir !== undefined && existsSync(dir) && readdirSync(dir).length > 0)
      throw new RangeError(`--base-dir ${dir} must be empty or absent (each run starts a fresh chain)`)
  } catch (err) {
    console.error(`swarm: ${(err as Error).message}`)
    return 2
  }
  const base = f['base-dir'] ?? mkdtempSync(join(tmpdir(), 'openlora-swarm-'))
  mkdirSync(base, { recursive: true })
  const info = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`)
  const abort = new AbortController()
  const onSignal = () => {
    info('stopping (Ctrl-C)')
    abort.abort()
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let failed = 0
  let lastShown = 0
  try {
    const report = await runSwarmLoop({
      base,
      nodes: f.nodes,
      jobs,
      adapters,
      chaos: f.chaos === true,
      concurrency,
      maxNewTokens,
      seed,
      signal: abort.signal,
      log: info,
      onJob: (o, done, total) => {
        if (!o.ok) failed++
        // about 20 progress lines per run, plus every failure
        if (!o.ok || done === total || done - lastShown >= Math.max(1, Math.floor(total / 20))) {
          lastShown = done
          info(
            `jobs ${done}/${total} (${failed} failed)${o.ok ? '' : `: job failed after ${o.attempts} attempts: ${o.failures.join(', ')}`}`
          )
        }
      }
    })
    print(report, f.json === true)
    return report.reconciliation.ok ? 0 : 1
  } catch (err) {
    if (abort.signal.aborted) {
      info('stopped: every node and anvil are down')
      return 130
    }
    console.error(`swarm: ${(err as Error).stack ?? err}`)
    if (f.json) console.log(JSON.stringify({ error: (err as Error).message, base }))
    return 1
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    if (!f.keep && !f['base-dir']) rmSync(base, { recursive: true, force: true })
    else info(`kept ${base}`)
  }
}

const wei = (x: string) => `${(Number(BigInt(x)) / 1e18).toFixed(9)} OPEN (${x} wei)`

/** The JSON line: the whole report with the benchmark fields of the project's conventions (bench, machine, config, results, goals). */
function benchJson(r: SwarmReport): Record<string, unknown> {
  return {
    ...r,
    bench: 'swarm',
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, gpu: null },
    config: {
      nodes: r.nodes,
      jobs: r.jobs.requested,
      adapters: r.config.adapters,
      chaos: r.config.chaos,
      concurrency: r.config.concurrency,
      maxNewTokens: r.config.maxNewTokens,
      processes: 'one OS process per node (LocalSwarm), one anvil, the client in the launcher',
      model: 'tiny preset, random weights (demo), CPU'
    },
    results: {
      jobsPerSec: Math.round(r.jobsPerSec * 100) / 100,
      p50Ms: Math.round(r.latencyMs.p50),
      p99Ms: Math.round(r.latencyMs.p99),
      routedShare: Math.round(r.routedShare * 1000) / 1000,
      timeShares: r.timeShares.shares,
      timeTotalsMs: r.timeShares.totalsMs
    },
    goals: [
      {
        name: 'reconciled_to_the_wei',
        value: r.reconciliation.ok,
        target: 'true',
        met: r.reconciliation.ok
      }
    ]
  }
}

export function printReport(r: SwarmReport, json: boolean): void {
  if (json) {
    console.log(JSON.stringify(benchJson(r)))
    return
  }
  const rec = r.reconciliation
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`
  const lines = [
    `swarm of ${r.nodes} nodes, ${r.jobs.requested} paid jobs${r.chaos.length ? ` with ${r.chaos.length} chaos events` : ''}`,
    `jobs         ${r.jobs.ok} ok, ${r.jobs.failed} failed${r.jobs.failed ? ` (${JSON.stringify(r.jobs.failedReasons)})` : ''}; ${r.attempts.failovers} failed attempts failed over (${JSON.stringify(r.attempts.failureCodes)})`,
    ...Object.entries(r.attempts.failureSamples).map(([code, msg]) => `  ${code}: ${msg}`),
    `routed       ${pct(r.routedShare)} of ok jobs served by another node than their entry peer`,
    `latency      p50 ${r.latencyMs.p50.toFixed(0)} ms, p99 ${r.latencyMs.p99.toFixed(0)} ms`,
    `throughput   ${r.jobsPerSec.toFixed(2)} jobs/s over ${(r.jobsWallMs / 1000).toFixed(1)} s; ${r.tokens} tokens`,
    `receipts     ${r.receiptsVerified} verified (${r.spanAttributed} with span attribution)`,
    `time shares  ${Object.entries(r.timeShares.shares)
      .map(([k, v]) => `${k} ${pct(v)}`)
      .join(', ')}`,
    `             (settlement: ${r.timeShares.settlementInPathMs} ms in jobs' path, ${r.timeShares.claimMs} ms in claim transactions, ${r.timeShares.vouchersPerClaim} vouchers per claim)`,
    `vouchers     ${r.vouchersClaimed} claimed on-chain in ${r.timeShares.claims} node claims; ${r.settlement.leftUnclaimedAtStop} left at stop, claimed after`,
    `payments     receipts accepted Σ amountDue ${wei(rec.amountDueTotal)}; stored by the nodes ${rec.storedDueTotal} wei (paid without receipt ${rec.paidWithoutReceipt}); paid on-chain ${wei(rec.claimedTotal)} (claim mode ${rec.claimMode}, beyond the stored receipts ${rec.unusedMarginTotal} wei)`,
    ...r.chaos.map(
      (e) =>
        `chaos        +${(e.atMs / 1000).toFixed(1)} s ${e.kind} node ${e.node}${e.note ? ` (${e.note})` : ''}`
    ),
    ...r.restartClaims.map(
      (c) =>
        `restart      node ${c.node} claimed ${c.total} wei in ${c.claims} claims within 5 s of coming back`
    ),
    '',
    'balances (credits = Settlement, withdrawable; contributors: tokens withdrawn from the pools)',
    ...rec.parties.map(
      (p) =>
        `  ${p.ok ? 'ok ' : 'BAD'} ${p.role.padEnd(13)} ${p.address}  ${p.role === 'contributor' ? `tokens ${p.tokens}` : p.role === 'client' ? `escrow ${p.credits}` : `credits ${p.credits}`}  expected ${p.expected}`
    ),
    '',
    rec.ok
      ? 'RECONCILED: every balance matches the receipts and the contract shares to the wei'
      : `NOT RECONCILED:\n  ${rec.problems.join('\n  ')}`
  ]
  console.log(lines.join('\n'))
}
