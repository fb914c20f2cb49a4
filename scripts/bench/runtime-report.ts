// The runtime benchmark's measurements turned into what it reports: per-scenario results, the
// issue's goals (medians of ratios paired within a round) and the text summary. Apart from
// runtime.ts, which runs the scenarios, so how a run is judged reads (and changes) on its own.
import type { AdapterStoreStats } from '../../src/runtime/adapters/types.ts'
import type { Engine } from '../../src/runtime/engine/engine.ts'
import { median, pct } from './runtime-measure.ts'

export const r2 = (x: number) => Math.round(x * 100) / 100

export interface Tally {
  tokens: number
  ms: number
  ttft: number[]
  queued: number[]
  requests: number
  /** tokens/s of each round's batch, for ratios paired within a round */
  perRound: number[]
}
export const tally = (): Tally => ({ tokens: 0, ms: 0, ttft: [], queued: [], requests: 0, perRound: [] })

export type ScenarioName = 'base' | 'one' | 'd100' | 'd1000' | 'mixed'

/** Everything a run measured, as runtime.ts collected it. */
export interface Measured {
  family: string
  scenarios: Record<ScenarioName, Tally>
  naive: {
    tokens: number
    ms: number
    switchMs: number[]
    buildMs: number[]
    sessionMs: number[]
    requests: number
    perRound: number[]
  }
  batch1: { decodeTokS: number[]; copyBps: number[] }
  coldMs: number[]
  switchMs: number[]
  fp32Bytes: number
  ramPerWarm: number
  rssPerWarm: number
  /** the q/v store right after every adapter was cold-loaded */
  warm: AdapterStoreStats
  weightBytesPerToken: number
  engines: Record<string, ReturnType<typeof engineStats>>
  wallMs: number
  qvAdapters: number
  warmBudgetBytes: number
}

export function engineStats(e: Engine) {
  const m = e.metrics()
  return {
    steps: m.steps,
    rowsPerStep: r2(m.stepRows / m.steps),
    slotWaits: m.slotWaits,
    stepMsMean: r2(m.stepMs / m.steps)
  }
}

export function judge(m: Measured) {
  const tps = (t: { tokens: number; ms: number }) => t.tokens / (t.ms / 1000)
  const scen = Object.fromEntries(
    Object.entries(m.scenarios).map(([k, t]) => [
      k,
      {
        tokensPerSec: r2(tps(t)),
        ttftP50Ms: r2(pct(t.ttft, 50)),
        ttftP99Ms: r2(pct(t.ttft, 99)),
        queuedP99Ms: r2(pct(t.queued, 99)),
        requests: t.requests,
        tokens: t.tokens
      }
    ])
  )
  const { naive, batch1, coldMs, switchMs, fp32Bytes, ramPerWarm } = m
  const S = m.scenarios
  const naiveTps = tps(naive)
  const copyBps = pct(batch1.copyBps, 50)
  const wBytes = m.weightBytesPerToken
  const boundTokS = copyBps / wBytes
  const decodeTokS = pct(batch1.decodeTokS, 50)
  const results = {
    family: m.family,
    scenarios: scen,
    naive: {
      tokensPerSec: r2(naiveTps),
      perTokenMs: r2(naive.ms / naive.tokens),
      switchP50Ms: r2(pct(naive.switchMs, 50)),
      // of a switch: merge + graph build (+ quantization) + write, then the session start
      switchBuildP50Ms: r2(pct(naive.buildMs, 50)),
      switchSessionP50Ms: r2(pct(naive.sessionMs, 50)),
      requests: naive.requests,
      tokens: naive.tokens
    },
    coldLoadP50Ms: r2(pct(coldMs, 50)),
    coldLoadP99Ms: r2(pct(coldMs, 99)),
    coldLoadSamples: coldMs.length,
    warmToHotP50Ms: r2(pct(switchMs, 50) * 1000) / 1000,
    warmToHotP99Ms: r2(pct(switchMs, 99) * 1000) / 1000,
    warmToHotSamples: switchMs.length,
    adapterFp32Bytes: fp32Bytes,
    ramPerWarmAdapterBytes: Math.round(ramPerWarm),
    rssPerWarmAdapterBytes: Math.round(m.rssPerWarm),
    warmAdapters: m.warm.warm,
    warmBytes: m.warm.warmBytes,
    warmBudgetBytes: m.warm.warmBudgetBytes,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    batch1: {
      decodeTokensPerSec: r2(decodeTokS),
      weightBytesPerToken: wBytes,
      copyBandwidthGBps: r2(copyBps / 1e9),
      boundTokensPerSec: r2(boundTokS),
      fractionOfBound: r2(decodeTokS / boundTokS),
      samples: batch1.decodeTokS.length
    },
    engines: m.engines,
    wallSeconds: r2(m.wallMs / 1000)
  }
  const g = (name: string, value: number, target: string, met: boolean) => ({
    name,
    value: r2(value),
    target,
    met
  })
  // ratios paired within each round (same minutes, same machine state), then the median
  const paired = (a: number[], b: number[]) => a.map((x, i) => x / b[i]!)
  const ratios = {
    distinct1000_vs_one: paired(S.d1000.perRound, S.one.perRound),
    one_vs_base: paired(S.one.perRound, S.base.perRound),
    distinct1000_vs_naive: paired(S.d1000.perRound, naive.perRound),
    distinct100_vs_one: paired(S.d100.perRound, S.one.perRound)
  }
  ;(results as Record<string, unknown>).pairedRatios = Object.fromEntries(
    Object.entries(ratios).map(([k, v]) => [k, { median: r2(median(v)), samples: v.map(r2) }])
  )
  const med = (k: keyof typeof ratios) => median(ratios[k])
  const goals = [
    g('distinct1000_vs_one', med('distinct1000_vs_one'), '>= 0.90', med('distinct1000_vs_one') >= 0.9),
    g('one_vs_base', med('one_vs_base'), '>= 0.90', med('one_vs_base') >= 0.9),
    // 1,000 distinct ÷ the naive merge-and-rebuild server (≥ 20) is no goal on CPU: issue 17 retired
    // it, as it measured the baseline's reload more than our engine (docs/ENGINE.md "Why 1,000/naive
    // stays at 10-16"); the ratio stays in pairedRatios
    g('cold_load_p50_ms', results.coldLoadP50Ms, '<= 30', results.coldLoadP50Ms <= 30),
    g('warm_to_hot_p50_ms', results.warmToHotP50Ms, '<= 1', results.warmToHotP50Ms <= 1),
    g('ram_per_warm_adapter_vs_fp32', ramPerWarm / fp32Bytes, '<= 1.2', ramPerWarm / fp32Bytes <= 1.2),
    g(
      'warm_adapters_within_budget',
      m.warm.warm,
      `>= ${m.qvAdapters} within ${m.warmBudgetBytes} bytes`,
      m.warm.warm >= m.qvAdapters && m.warm.warmBytes <= m.warm.warmBudgetBytes
    )
  ]
  return { scen, results, goals }
}

/** The human summary (without --json): a line per scenario, the tier timings, then each goal. */
export function summaryText(
  scen: ReturnType<typeof judge>['scen'],
  results: ReturnType<typeof judge>['results'],
  goals: ReturnType<typeof judge>['goals']
): string {
  const fp32Bytes = results.adapterFp32Bytes
  const rows = Object.entries(scen).map(
    ([k, v]) =>
      `${k.padEnd(8)} ${String(v.tokensPerSec).padStart(9)} tok/s  ttft p50 ${v.ttftP50Ms} ms  p99 ${v.ttftP99Ms} ms`
  )
  return [
    ...rows,
    `naive    ${String(results.naive.tokensPerSec).padStart(9)} tok/s  (${results.naive.switchP50Ms} ms per adapter switch)`,
    `cold load p50 ${results.coldLoadP50Ms} ms p99 ${results.coldLoadP99Ms} ms; warm→hot p50 ${results.warmToHotP50Ms} ms`,
    `RAM per warm adapter ${results.ramPerWarmAdapterBytes} B (fp32 ${fp32Bytes} B); peak RSS ${(results.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
    `batch-1 decode ${results.batch1.decodeTokensPerSec} tok/s; bound ${results.batch1.boundTokensPerSec} tok/s at ${results.batch1.copyBandwidthGBps} GB/s copy`,
    ...goals.map((x) => `${x.met ? 'MET ' : 'MISS'} ${x.name} = ${x.value} (${x.target})`),
    ''
  ].join('\n')
}
