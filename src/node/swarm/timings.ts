// Where a job's time goes, from what the client measured and what the serving nodes logged:
//   routing     — client → entry → serving node until `accepted`, less the serving node's payment
//                 check (dial, admission, forwarding, the server's queue admission);
//   inference   — the engine's own time (queue, prefill, decode: the result's timings.totalMs);
//   attribution — span attribution of the output on the serving node;
//   signing     — the receipt's two signatures on the node, the client's voucher signature and
//                 its receipt verification;
//   settlement  — the node's voucher check and payment record (LevelDB) plus the claim
//                 transactions' time (the nodes' `claimed` log lines).
// Node figures come from the `job served` and `claimed` lines of each node's JSON log.
import { readFile } from 'node:fs/promises'
import type { JobOutcome } from './driver.ts'

export interface TimeShares {
  /** total ms per part over all successful jobs */
  totalsMs: Record<'routing' | 'inference' | 'attribution' | 'signing' | 'settlement', number>
  /** the same as shares of their sum */
  shares: Record<'routing' | 'inference' | 'attribution' | 'signing' | 'settlement', number>
  /** jobs whose node-side split was found in the logs */
  jobsWithNodeTimings: number
  claims: number
  /** of settlement: in the job's path (voucher check + payment record) and claim transactions
   * (in the background, not on any job's path) */
  settlementInPathMs: number
  claimMs: number
  vouchersPerClaim: number
}

interface ServedLine {
  vouchers?: number
  msg?: string
  jobId?: string
  checkMs?: number
  attributionMs?: number
  signMs?: number
  recordMs?: number
  ms?: number
}

export async function timeShares(ok: JobOutcome[], nodeLogs: string[]): Promise<TimeShares> {
  const served = new Map<string, ServedLine>()
  let claimMs = 0
  let claims = 0
  let claimedVouchers = 0
  for (const f of nodeLogs) {
    const text = await readFile(f, 'utf8').catch(() => '')
    for (const line of text.split('\n')) {
      if (!line.includes('"job served"') && !line.includes('"claimed"')) continue
      let o: ServedLine & { ms?: number }
      try {
        o = JSON.parse(line)
      } catch {
        continue
      }
      if (o.msg === 'job served' && o.jobId) served.set(o.jobId, o)
      if (o.msg === 'claimed') {
        claims++
        claimedVouchers += o.vouchers ?? 0
        if (typeof o.ms === 'number') claimMs += o.ms
      }
    }
  }
  const t = { routing: 0, inference: 0, attribution: 0, signing: 0, settlement: claimMs }
  let withNode = 0
  let inPath = 0
  for (const o of ok) {
    const s = o.jobId ? served.get(o.jobId) : undefined
    const check = s?.checkMs ?? 0
    if (s && s.checkMs !== undefined) withNode++
    const p = o.phases!
    t.routing += Math.max(0, p.toAcceptedMs - check)
    t.inference += o.timings?.totalMs ?? 0
    t.attribution += s?.attributionMs ?? 0
    t.signing += p.voucherMs + p.verifyMs + (s?.signMs ?? 0)
    t.settlement += check + (s?.recordMs ?? 0)
    inPath += check + (s?.recordMs ?? 0)
  }
  const sum = Object.values(t).reduce((a, x) => a + x, 0) || 1
  const r = (x: number) => Math.round(x * 1000) / 1000
  return {
    totalsMs: {
      routing: Math.round(t.routing),
      inference: Math.round(t.inference),
      attribution: Math.round(t.attribution),
      signing: Math.round(t.signing),
      settlement: Math.round(t.settlement)
    },
    shares: {
      routing: r(t.routing / sum),
      inference: r(t.inference / sum),
      attribution: r(t.attribution / sum),
      signing: r(t.signing / sum),
      settlement: r(t.settlement / sum)
    },
    jobsWithNodeTimings: withNode,
    claims,
    settlementInPathMs: Math.round(inPath),
    claimMs: Math.round(claimMs),
    vouchersPerClaim: claims ? Math.round((claimedVouchers / claims) * 10) / 10 : 0
  }
}

export interface RestartClaims {
  node: number
  /** claims the restarted node sent within 5 s of its chain service starting again */
  claims: number
  /** wei they claimed: payments stored before the node died */
  total: string
}

/** Evidence that a restarted node claims what it stored before it died (from its JSON log). */
export async function claimsAtRestart(nodeLogs: string[]): Promise<RestartClaims[]> {
  const out: RestartClaims[] = []
  for (const [i, f] of nodeLogs.entries()) {
    const text = await readFile(f, 'utf8').catch(() => '')
    let starts = 0
    let since = 0
    let row: RestartClaims | undefined
    for (const line of text.split('\n')) {
      if (!line.includes('"chain service started"') && !line.includes('"claimed"')) continue
      let o: { msg?: string; time?: string; total?: string }
      try {
        o = JSON.parse(line)
      } catch {
        continue
      }
      const at = Date.parse(o.time ?? '')
      if (o.msg === 'chain service started' && ++starts > 1) {
        since = at
        row = { node: i, claims: 0, total: '0' }
        out.push(row)
      } else if (o.msg === 'claimed' && row && at - since <= 5_000) {
        row.claims++
        row.total = (BigInt(row.total) + BigInt(o.total ?? '0')).toString()
      }
    }
  }
  return out
}
