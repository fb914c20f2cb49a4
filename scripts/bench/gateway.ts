// What the OpenAI-compatible gateway costs over a direct libp2p job (issue 18), tiny model, one
// process, loopback: node S serves (adapter hot) and runs the gateway; a libp2p client sends the
// same jobs straight to S.
//   1. overhead: the same small job over HTTP (POST /v1/completions, token-id prompt, not
//      streamed) and over libp2p, interleaved pair by pair (order flipped each pair);
//      overhead = gateway − direct per pair, p50 and p99;
//   2. streams: time to first token and tokens/s with 1 and 32 concurrent streams, gateway (SSE)
//      beside direct (token frames), alternating A/B rounds.
// Neither path verifies receipts (the gateway trusts its own node's; the direct client is run
// with verify off, as bench:protocol does), so both measure the same work.
//
//   npm run bench:gateway -- [--quick] [--json]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { InferClient, type InferInput } from '../../src/client/client.ts'
import { createClientHost, dialerOf } from '../../src/client/host.ts'
import { addrOf, makeFixtures, serving, startNode } from '../../test/e2e/infer-fixture.ts'
import { benchArgs } from './args.ts'
import { benchMachine } from './machine.ts'

const values = benchArgs('npm run bench:gateway -- [--quick] [--json]', {
  quick: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false }
})
const quick = values.quick === true
const PAIRS = quick ? 60 : 300
const SHORT_TOKENS = 8
const STREAM_TOKENS = 32
const ROUNDS = quick ? 2 : 4
const say = (s: string): void => {
  if (!values.json) console.log(s)
}
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}
const r2 = (x: number): number => Math.round(x * 100) / 100

const root = mkdtempSync(join(tmpdir(), 'openlora-bench-gateway-'))
const stops: (() => Promise<unknown>)[] = []
try {
  const fx = await makeFixtures(root, 1)
  const S = await startNode(root, 'server', fx, {
    price: '0',
    infer: {
      maxConcurrentJobsPerPeer: 256,
      requestsPerSecondPerPeer: 100_000,
      requestBurstPerPeer: 100_000,
      maxBatch: 8,
      maxQueued: 256
    }
  })
  stops.push(() => S.stop())
  const model = serving(S).models()[0]!.modelId
  const cid = (await serving(S).store()!.import(fx.adapterDirs[0]!)).cid
  await serving(S).store()!.ensure(cid)
  const host = await createClientHost()
  stops.push(() => host.stop())
  const client = host.client
  const gw = S.services.gateway!.url!
  const promptIds = [1, 17, 42, 99, 7, 3, 250, 11]
  const job = (maxNewTokens: number): InferInput => ({
    model,
    adapter: cid,
    promptIds,
    params: { maxNewTokens }
  })
  const body = (maxTokens: number, stream: boolean) =>
    JSON.stringify({ model: cid, prompt: promptIds, max_tokens: maxTokens, temperature: 0, stream })

  const direct = async (n: number): Promise<number> => {
    const t0 = performance.now()
    await client.infer(addrOf(S), job(n), { verify: false })
    return performance.now() - t0
  }
  const viaGateway = async (n: number): Promise<number> => {
    const t0 = performance.now()
    const res = await fetch(`${gw}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(n, false)
    })
    if (res.status !== 200) throw new Error(`gateway answered ${res.status}: ${await res.text()}`)
    await res.json()
    return performance.now() - t0
  }
  // the gateway's own path without HTTP: the node's in-process client (what the gateway calls)
  const local = new InferClient({
    peerId: S.peerId,
    privateKey: S.identity.privateKey,
    dial: dialerOf(S.libp2p),
    local: { submit: (f, o) => S.services.infer!.submit(f, o) }
  })
  const inProcess = async (n: number): Promise<number> => {
    const t0 = performance.now()
    await local.infer(S.peerId, job(n), { verify: 'remote' })
    return performance.now() - t0
  }
  for (let i = 0; i < 20; i++) {
    await direct(SHORT_TOKENS)
    await viaGateway(SHORT_TOKENS)
    await inProcess(SHORT_TOKENS)
  }

  say(`overhead: ${PAIRS} interleaved pairs of an ${promptIds.length}+${SHORT_TOKENS}-token job…`)
  const d: number[] = []
  const g: number[] = []
  const extra: number[] = []
  const http: number[] = []
  for (let i = 0; i < PAIRS; i++) {
    // the HTTP layer alone: gateway minus the same job in process, back to back
    const [x, y] = i % 2 === 0 ? [await viaGateway(SHORT_TOKENS), await inProcess(SHORT_TOKENS)] : [0, 0]
    if (i % 2 === 0) http.push(x - y)
    let a: number
    let b: number
    if (i % 2 === 0) {
      a = await direct(SHORT_TOKENS)
      b = await viaGateway(SHORT_TOKENS)
    } else {
      b = await viaGateway(SHORT_TOKENS)
      a = await direct(SHORT_TOKENS)
    }
    d.push(a)
    g.push(b)
    extra.push(b - a)
  }

  /** One streamed job: time to its first token and its token count. */
  const streamDirect = async (): Promise<{ ttft: number; tokens: number }> => {
    const t0 = performance.now()
    let ttft = -1
    const r = await client.infer(addrOf(S), job(STREAM_TOKENS), {
      verify: false,
      onToken: () => {
        if (ttft < 0) ttft = performance.now() - t0
      }
    })
    return { ttft, tokens: r.outputIds.length }
  }
  const streamGateway = async (): Promise<{ ttft: number; tokens: number }> => {
    const t0 = performance.now()
    const res = await fetch(`${gw}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: cid,
        prompt: promptIds,
        max_tokens: STREAM_TOKENS,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true }
      })
    })
    let ttft = -1
    let tokens = 0
    let buf = ''
    const dec = new TextDecoder()
    for await (const part of res.body!) {
      buf += dec.decode(part as Uint8Array, { stream: true })
      let at = buf.indexOf('\n\n')
      while (at >= 0) {
        const ev = buf.slice(0, at)
        buf = buf.slice(at + 2)
        at = buf.indexOf('\n\n')
        if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue
        const c = JSON.parse(ev.slice(6)) as {
          choices: { text: string }[]
          usage?: { completion_tokens: number }
        }
        if (ttft < 0 && (c.choices[0]?.text ?? '') !== '') ttft = performance.now() - t0
        if (c.usage) tokens = c.usage.completion_tokens
      }
    }
    return { ttft, tokens }
  }
  const streams = async (
    one: () => Promise<{ ttft: number; tokens: number }>,
    n: number
  ): Promise<{ ttftMs: number[]; tokensPerSec: number }> => {
    const t0 = performance.now()
    const out = await Promise.all(Array.from({ length: n }, one))
    const s = (performance.now() - t0) / 1000
    return { ttftMs: out.map((o) => o.ttft), tokensPerSec: out.reduce((x, o) => x + o.tokens, 0) / s }
  }
  const streamResults: Record<string, { ttftP50Ms: number; tokensPerSec: number }> = {}
  for (const n of [1, 32]) {
    say(`streams: ${n} concurrent, ${ROUNDS} A/B rounds of ${STREAM_TOKENS} tokens each…`)
    const acc = {
      gateway: { t: [] as number[], tps: [] as number[] },
      direct: { t: [] as number[], tps: [] as number[] }
    }
    for (let i = 0; i < ROUNDS * (n === 1 ? 5 : 1); i++) {
      const gr = await streams(streamGateway, n)
      const dr = await streams(streamDirect, n)
      acc.gateway.t.push(...gr.ttftMs)
      acc.gateway.tps.push(gr.tokensPerSec)
      acc.direct.t.push(...dr.ttftMs)
      acc.direct.tps.push(dr.tokensPerSec)
    }
    for (const k of ['gateway', 'direct'] as const)
      streamResults[`${k}${n}`] = { ttftP50Ms: r2(pct(acc[k].t, 50)), tokensPerSec: r2(pct(acc[k].tps, 50)) }
  }

  const results = {
    samples: PAIRS,
    directP50Ms: r2(pct(d, 50)),
    directP99Ms: r2(pct(d, 99)),
    gatewayP50Ms: r2(pct(g, 50)),
    gatewayP99Ms: r2(pct(g, 99)),
    overheadP50Ms: r2(pct(extra, 50)),
    overheadP99Ms: r2(pct(extra, 99)),
    httpLayerP50Ms: r2(pct(http, 50)),
    httpLayerP99Ms: r2(pct(http, 99)),
    ttftP50Ms: {
      gateway1: streamResults.gateway1!.ttftP50Ms,
      direct1: streamResults.direct1!.ttftP50Ms,
      gateway32: streamResults.gateway32!.ttftP50Ms,
      direct32: streamResults.direct32!.ttftP50Ms
    },
    tokensPerSec: {
      gateway1: streamResults.gateway1!.tokensPerSec,
      direct1: streamResults.direct1!.tokensPerSec,
      gateway32: streamResults.gateway32!.tokensPerSec,
      direct32: streamResults.direct32!.tokensPerSec
    }
  }
  const out = {
    bench: 'gateway',
    machine: benchMachine(),
    config: {
      model: 'tiny preset (2 layers, hidden 64), CPU, 1 intra-op thread, maxBatch 8',
      adapter: 'rank 8 q_proj,v_proj, hot',
      job: `${promptIds.length} prompt token ids; ${SHORT_TOKENS} new tokens (overhead) / ${STREAM_TOKENS} (streams), greedy`,
      paths: 'gateway: fetch → fastify → InferService.submit in process; direct: libp2p client → TCP → S',
      pairs: PAIRS,
      rounds: ROUNDS,
      warm: 'connections, ORT session, adapter slot and JIT warmed by 40 jobs',
      quick
    },
    results,
    goals: [
      {
        name: 'gateway_overhead_p50_ms',
        value: results.overheadP50Ms,
        target: '<= 2',
        met: results.overheadP50Ms <= 2
      }
    ]
  }
  say('')
  say(`direct   p50 ${results.directP50Ms} ms  p99 ${results.directP99Ms} ms`)
  say(`gateway  p50 ${results.gatewayP50Ms} ms  p99 ${results.gatewayP99Ms} ms`)
  say(`overhead p50 ${results.overheadP50Ms} ms  p99 ${results.overheadP99Ms} ms   (goal p50 <= 2 ms)`)
  say(
    `HTTP layer alone (gateway − in-process job) p50 ${results.httpLayerP50Ms} ms  p99 ${results.httpLayerP99Ms} ms`
  )
  for (const n of [1, 32])
    say(
      `${n} stream(s): TTFT p50 gateway ${streamResults[`gateway${n}`]!.ttftP50Ms} / direct ${streamResults[`direct${n}`]!.ttftP50Ms} ms; tokens/s gateway ${streamResults[`gateway${n}`]!.tokensPerSec} / direct ${streamResults[`direct${n}`]!.tokensPerSec}`
    )
  if (values.json) console.log(JSON.stringify(out))
} finally {
  for (const s of stops.reverse()) await s().catch(() => {})
  rmSync(root, { recursive: true, force: true })
}
