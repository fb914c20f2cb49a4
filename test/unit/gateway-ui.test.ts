// The dashboard's HTTP side (src/gateway/ui/routes.ts) on the gateway app, through fastify's
// inject: the pages are public, their data needs the gateway's key when keys are on, inputs are
// zod-checked and size-limited, a receipt is checked by the real verifier, only the dashboard's
// own files are served, and the live stream sends finished jobs.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { silentLogger } from '../../src/common/log.ts'
import { Catalog } from '../../src/gateway/catalog.ts'
import { KeyAuth, KeyStore } from '../../src/gateway/keys.ts'
import { buildGatewayApp } from '../../src/gateway/server.ts'
import type { JobRecord } from '../../src/gateway/ui/jobs-log.ts'
import type { UiData } from '../../src/gateway/ui/routes.ts'
import { NodeMetrics } from '../../src/metrics/registry.ts'

const dir = mkdtempSync(join(tmpdir(), 'gateway-ui-unit-'))
test.after(() => rmSync(dir, { recursive: true, force: true }))

const listeners = new Set<(j: JobRecord) => void>()
const data: UiData = {
  overview: async () => ({ peerId: 'self' }),
  network: () => ({ self: 'self', peers: [] }),
  adapters: async () => ({ adapters: [] }),
  jobs: () => ({ jobs: [] }),
  earnings: async () => ({ chain: false }),
  datanets: async () => ({ datanets: [] }),
  factory: async () => ({ offered: false, chain: false, models: [], datanets: [] }),
  decode: (_model, ids) => ids.map((i) => String.fromCharCode(96 + i)).join(''),
  onJob: (l) => {
    listeners.add(l)
    return () => listeners.delete(l)
  }
}

async function app(keysOn: boolean) {
  const store = new KeyStore(dir)
  const { key } = store.add({ name: `k${Math.random()}` })
  const aliases = { get: () => undefined, namesOf: () => [] }
  const gw = await buildGatewayApp({
    jobs: { infer: () => Promise.reject(new Error('no jobs here')) },
    catalog: new Catalog(undefined, undefined, aliases, {
      peerId: 'self',
      operator: '0x',
      pricePer1kTokens: '0'
    }),
    metrics: new NodeMetrics({ defaultMetrics: false }),
    auth: new KeyAuth(store, keysOn, () => undefined),
    health: {
      peerId: 'self',
      models: () => [],
      peers: () => 0,
      load: () => ({ queueDepth: 0, freeSlots: 0 })
    },
    ui: data,
    plan: { defaultMaxTokens: 16 },
    maxConcurrentJobs: 4,
    requestTimeoutMs: 10_000,
    idleTimeoutMs: 10_000,
    log: silentLogger
  })
  return { gw, key }
}

test('with keys on: the pages load without a key, their data needs one', async () => {
  const { gw, key } = await app(true)
  for (const url of ['/ui/', '/ui/app.js', '/ui/style.css', '/ui/vendor/uplot.js']) {
    const r = await gw.inject({ url })
    assert.is(r.statusCode, 200, url)
  }
  assert.is((await gw.inject({ url: '/ui' })).headers.location, '/ui/')
  assert.is((await gw.inject({ url: '/ui/api/overview' })).statusCode, 401)
  const ok = await gw.inject({ url: '/ui/api/overview', headers: { authorization: `Bearer ${key}` } })
  assert.is(ok.statusCode, 200)
  assert.equal(ok.json(), { peerId: 'self' })
  const post = await gw.inject({ method: 'POST', url: '/ui/api/verify', payload: { receipt: {} } })
  assert.is(post.statusCode, 401)
  await gw.close()
})

test('only the dashboard’s own files are served', async () => {
  const { gw } = await app(false)
  assert.is((await gw.inject({ url: '/ui/../server.ts' })).statusCode, 404)
  assert.is((await gw.inject({ url: '/ui/routes.ts' })).statusCode, 404)
  assert.is((await gw.inject({ url: '/ui/vendor/uPlot.cjs.js' })).statusCode, 404)
  // a page name typed as a path goes to the app's route for it
  assert.is((await gw.inject({ url: '/ui/jobs' })).headers.location, '/ui/#/jobs')
  await gw.close()
})

test('verify: a bad receipt fails naming the check; bad bodies are 400 with the field', async () => {
  const { gw } = await app(false)
  const v = await gw.inject({ method: 'POST', url: '/ui/api/verify', payload: { receipt: { body: {} } } })
  assert.is(v.statusCode, 200)
  const out = v.json() as { ok: boolean; check: string }
  assert.is(out.ok, false)
  assert.is(out.check, 'schema')
  const extra = await gw.inject({ method: 'POST', url: '/ui/api/verify', payload: { receipt: {}, other: 1 } })
  assert.is(extra.statusCode, 400)
  const badJob = await gw.inject({
    method: 'POST',
    url: '/ui/api/verify',
    payload: { receipt: {}, expect: { jobId: 'x' } }
  })
  assert.is(badJob.statusCode, 400)
  assert.match(badJob.body, /jobId/)
  const big = await gw.inject({
    method: 'POST',
    url: '/ui/api/verify',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ receipt: 'x'.repeat(600 * 1024) })
  })
  assert.is(big.statusCode, 413)
  await gw.close()
})

test('spans: token ids decoded with the node’s tokenizer; limits on count and ids', async () => {
  const { gw } = await app(false)
  const r = await gw.inject({
    method: 'POST',
    url: '/ui/api/spans',
    payload: { model: 'm', spans: [{ tokens: [1, 2, 3] }] }
  })
  assert.equal(r.json(), { texts: ['abc'] })
  const tooMany = await gw.inject({
    method: 'POST',
    url: '/ui/api/spans',
    payload: { model: 'm', spans: Array.from({ length: 257 }, () => ({ tokens: [1] })) }
  })
  assert.is(tooMany.statusCode, 400)
  const negative = await gw.inject({
    method: 'POST',
    url: '/ui/api/spans',
    payload: { model: 'm', spans: [{ tokens: [-1] }] }
  })
  assert.is(negative.statusCode, 400)
  await gw.close()
})

test('events: the live stream sends each finished job', async () => {
  const { gw } = await app(false)
  await gw.listen({ host: '127.0.0.1', port: 0 })
  const addr = gw.server.address() as { port: number }
  const ac = new AbortController()
  const res = await fetch(`http://127.0.0.1:${addr.port}/ui/api/events`, { signal: ac.signal })
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/)
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
  let text = ''
  while (!text.includes('event: hello')) text += (await reader.read()).value
  for (const l of listeners) l({ jobId: '0xabc' } as JobRecord)
  while (!text.includes('event: job')) text += (await reader.read()).value
  assert.match(text, /event: job\ndata: \{"jobId":"0xabc"\}/)
  ac.abort()
  gw.server.closeAllConnections()
  await gw.close()
})

test.run()
