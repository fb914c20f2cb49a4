// Routing cost of the infer protocol (issue 5) with the tiny model on loopback, all in ONE
// process: a serving node S (adapter hot) and an entry node E that serves nothing and forwards.
//   1. latency: the same small job sent straight to S and through E, interleaved pair by pair
//      (the order flips each pair), so drift of this shared machine hits both alike;
//      extra = routed − direct per pair, p50 and p99;
//   2. throughput: jobs/s with 32 jobs in flight through E, and straight to S as the baseline,
//      alternating A/B/A/B rounds;
//   3. bytes: application bytes on the stream per job beyond the token ids themselves
//      (request, accepted, result with receipt, token frame overhead); Noise/Yamux framing not counted.
//
//   npm run bench:protocol -- [--quick] [--json]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { InferClient, InferInput, InferResult } from '../../src/client/client.ts'
import { createClientHost } from '../../src/client/host.ts'
import { signReceipt, verifyReceipt } from '../../src/protocols/infer/receipt.ts'
import { addrOf, makeFixtures, sees, serving, startNode, until } from '../../test/e2e/infer-fixture.ts'
import { benchArgs } from './args.ts'
import { benchMachine } from './machine.ts'

const values = benchArgs('npm run bench:protocol -- [--quick] [--json]', {
  quick: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false }
})
const quick = values.quick === true
const PAIRS = quick ? 60 : 300
const CONCURRENCY = 32
const ROUND_MS = quick ? 3_000 : 8_000
const ROUNDS = quick ? 2 : 3
const NEW_TOKENS = 8
const say = (s: string): void => {
  if (!values.json) console.log(s)
}
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}
const r2 = (x: number): number => Math.round(x * 100) / 100

const root = mkdtempSync(join(tmpdir(), 'openlora-bench-protocol-'))
const stops: (() => Promise<unknown>)[] = []
try {
  const fx = await makeFixtures(root, 1)
  const limits = {
    maxConcurrentJobsPerPeer: 256,
    requestsPerSecondPerPeer: 100_000,
    requestBurstPerPeer: 100_000
  }
  const S = await startNode(root, 'server', fx, { infer: { ...limits, maxBatch: 8, maxQueued: 256 } })
  stops.push(() => S.stop())
  const E = await startNode(root, 'entry', fx, { serve: false, bootstrap: [addrOf(S)], infer: limits })
  stops.push(() => E.stop())
  const model = serving(S).models()[0]!.modelId
  const cid = (await serving(S).store()!.import(fx.adapterDirs[0]!)).cid
  await serving(S).store()!.ensure(cid)
  await until('entry sees the server with the adapter hot', () => sees(E, S, cid, ['hot']), 30_000)
  const host = await createClientHost()
  stops.push(() => host.stop())
  const client: InferClient = host.client
  const job: InferInput = {
    model,
    adapter: cid,
    promptIds: [1, 17, 42, 99, 7, 3, 250, 11],
    params: { maxNewTokens: NEW_TOKENS }
  }
  const direct = addrOf(S)
  const routed = addrOf(E)
  // The client's receipt check (EIP-712 recovery, ~ms of JS) is the client's cost, not the
  // network's, and here it would run on the nodes' own event loop; it is timed on its own below.
  const timed = async (to: string, verify = false): Promise<{ ms: number; r: InferResult }> => {
    const t0 = performance.now()
    const r = await client.infer(to, job, { verify })
    if (verify && !r.verification?.ok) throw new Error(`receipt failed: ${JSON.stringify(r.verification)}`)
    return { ms: performance.now() - t0, r }
  }
  // warm-up: connections, ORT session, the adapter slot, JIT
  for (let i = 0; i < 20; i++) {
    await timed(direct)
    await timed(routed)
  }
  const first = await timed(routed, true)
  if (first.r.servedBy !== S.peerId || first.r.route.length !== 2)
    throw new Error('routed job did not go E → S')

  say(`latency: ${PAIRS} interleaved pairs of a ${job.promptIds!.length}+${NEW_TOKENS}-token job…`)
  const d: number[] = []
  const rt: number[] = []
  const extra: number[] = []
  for (let i = 0; i < PAIRS; i++) {
    let a: number
    let b: number
    if (i % 2 === 0) {
      a = (await timed(direct)).ms
      b = (await timed(routed)).ms
    } else {
      b = (await timed(routed)).ms
      a = (await timed(direct)).ms
    }
    d.push(a)
    rt.push(b)
    extra.push(b - a)
  }

  const throughput = async (to: string): Promise<number> => {
    let done = 0
    const end = performance.now() + ROUND_MS
    const t0 = performance.now()
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < end) {
          await client.infer(to, job, { verify: false })
          done++
        }
      })
    )
    return done / ((performance.now() - t0) / 1000)
  }
  say(`throughput: ${CONCURRENCY} jobs in flight, ${ROUNDS} A/B rounds of ${ROUND_MS} ms…`)
  const tpRouted: number[] = []
  const tpDirect: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    tpRouted.push(await throughput(routed))
    tpDirect.push(await throughput(direct))
  }

  // what a receipt costs: the server signs (Ed25519 + EIP-712), the client verifies both
  const VERIFY_SAMPLES = quick ? 20 : 50
  let t0 = performance.now()
  for (let i = 0; i < VERIFY_SAMPLES; i++) await verifyReceipt(first.r.receipt)
  const verifyMs = (performance.now() - t0) / VERIFY_SAMPLES
  t0 = performance.now()
  const signer = {
    peerId: S.peerId,
    signPeer: (b: Uint8Array) => S.identity.privateKey.sign(b),
    operator: S.identity.operator.account as never,
    domain: first.r.receipt.eip712
  }
  for (let i = 0; i < VERIFY_SAMPLES; i++) await signReceipt(first.r.receipt.body, signer)
  const signMs = (performance.now() - t0) / VERIFY_SAMPLES

  const w = first.r.wireBytes
  const n = first.r.outputIds.length
  const beyond = w.request + w.other + w.tokens - 4 * n
  const med = (xs: number[]) => pct(xs, 50)
  const results = {
    samples: PAIRS,
    directP50Ms: r2(pct(d, 50)),
    directP99Ms: r2(pct(d, 99)),
    routedP50Ms: r2(pct(rt, 50)),
    routedP99Ms: r2(pct(rt, 99)),
    extraP50Ms: r2(pct(extra, 50)),
    extraP99Ms: r2(pct(extra, 99)),
    jobsPerSecRouted: r2(med(tpRouted)),
    jobsPerSecDirect: r2(med(tpDirect)),
    routedOverDirectThroughput: r2(med(tpRouted) / med(tpDirect)),
    receiptSignMs: r2(signMs),
    receiptVerifyMs: r2(verifyMs),
    bytesPerJob: {
      request: w.request,
      acceptedAndResult: w.other,
      tokenFrames: w.tokens,
      outputTokens: n,
      beyondTokenIds: beyond
    }
  }
  const out = {
    bench: 'protocol',
    machine: benchMachine(),
    config: {
      model: 'tiny preset (2 layers, hidden 64), CPU, 1 intra-op thread',
      adapter: 'rank 8 q_proj,v_proj, hot on the server',
      job: `${job.promptIds!.length} prompt token ids, ${NEW_TOKENS} new tokens, greedy`,
      nodes: 'server S + relay-only entry E, one process, libp2p TCP on 127.0.0.1',
      latencyPairs: PAIRS,
      concurrency: CONCURRENCY,
      throughputRounds: ROUNDS,
      roundMs: ROUND_MS,
      warm: 'connections, ORT session, adapter slot and JIT warmed by 40 jobs; nothing cold measured',
      quick
    },
    results,
    goals: [
      {
        name: 'routing_extra_p50_ms',
        value: results.extraP50Ms,
        target: '<= 5',
        met: results.extraP50Ms <= 5
      }
    ]
  }
  say('')
  say(`direct   p50 ${results.directP50Ms} ms  p99 ${results.directP99Ms} ms`)
  say(`routed   p50 ${results.routedP50Ms} ms  p99 ${results.routedP99Ms} ms`)
  say(`extra    p50 ${results.extraP50Ms} ms  p99 ${results.extraP99Ms} ms   (goal p50 <= 5 ms)`)
  say(
    `jobs/s   routed ${results.jobsPerSecRouted}  direct ${results.jobsPerSecDirect}  (${CONCURRENCY} in flight)`
  )
  say(
    `bytes    request ${w.request}, accepted+result ${w.other}, token frames ${w.tokens} for ${n} tokens → ${beyond} B/job beyond token ids`
  )
  if (values.json) console.log(JSON.stringify(out))
} finally {
  for (const s of stops.reverse()) await s().catch(() => {})
  rmSync(root, { recursive: true, force: true })
}
