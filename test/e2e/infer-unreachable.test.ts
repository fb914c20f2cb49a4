// An entry node whose serving peers cannot be dialled (killed, partitioned, relay gone; here
// blocked at the connection gater through admin POST /peers/block, as the soak's partition
// does) after their adverts are known. Three real nodes on 127.0.0.1: E serves nothing, A and B
// serve the model, A cheaper so it is planned first. A cut off: the job fails over to B before
// anything ran and the next jobs plan A last (one failed dial at E, not one per job). Every serving peer blocked: the client gets PEER_UNREACHABLE naming them and the
// gateway 503 with Retry-After; the wire frame stays INTERNAL for clients that predate the code.
// Unblocked: served again. Real libp2p, adverts, engine, ORT, gateway and the official client.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { InferClient } from '../../src/client/client.ts'
import { createClientHost } from '../../src/client/host.ts'
import { adminRequest } from '../../src/node/admin.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { InferError } from '../../src/protocols/infer/errors.ts'
import { addrOf, type Fixtures, makeFixtures, serving, startNode, until } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'infer-unreachable-'))
let fx: Fixtures
let e: OpenLoraNode // entry: serves nothing, admin and gateway on
let a: OpenLoraNode // serves the model at price 0: planned first
let b: OpenLoraNode // serves the model at price 5
let client: InferClient
let stopClient: () => Promise<void>
let model = ''
const PROMPT = [1, 17, 42, 99, 7, 3, 250]

test.before(async () => {
  fx = await makeFixtures(root, 0)
  e = await startNode(root, 'e', fx, { serve: false, admin: true, price: '0' })
  const boot = [addrOf(e)]
  a = await startNode(root, 'a', fx, { bootstrap: boot, price: '0' })
  b = await startNode(root, 'b', fx, { bootstrap: boot, price: '5', admin: true })
  model = serving(a).models()[0]!.modelId
  ;({ client, stop: stopClient } = await createClientHost())
  const serves = (p: OpenLoraNode) => e.peerTable.query({ model }).some((m) => m.peerId === p.peerId)
  await until('the entry sees both serving peers', () => serves(a) && serves(b), 20_000)
})

test.after(async () => {
  await stopClient?.()
  for (const n of [b, a, e]) await n?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

const block = (at: 'e' | 'b', peers: OpenLoraNode[], path = '/peers/block') =>
  adminRequest(join(root, at), path, 5_000, {
    peers: peers.map((p) => p.peerId),
    ...(path === '/peers/block' ? { ms: 120_000 } : {})
  })

const job = (maxNewTokens = 4) =>
  client.infer(addrOf(e), { model, adapter: null, promptIds: PROMPT, params: { maxNewTokens } })

const connected = (x: OpenLoraNode, y: OpenLoraNode) => x.libp2p.getConnections(y.libp2p.peerId).length > 0

/** routing_forwards_total by outcome on the entry's /metrics */
async function forwards(): Promise<Record<string, number>> {
  const text = await (await fetch(`${e.services.gateway!.url!}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/^openlora_routing_forwards_total\{outcome="([a-z_]+)"\} (\d+)$/gm))
    out[m[1]!] = Number(m[2])
  return out
}

test('a peer the entry cannot dial is failed over before anything ran, then planned last', async () => {
  const warm = await job()
  assert.is(warm.servedBy, a.peerId, 'the cheaper peer is planned first')
  // a partition: A cut off from E and from B (else B, planning A first too, routes around it)
  await block('e', [a])
  await block('b', [a])
  await until('the partition hung up on A', () => !connected(e, a) && !connected(b, a), 10_000)
  const before = await forwards()
  for (let i = 0; i < 3; i++) {
    const r = await job()
    assert.is(r.servedBy, b.peerId, `route ${r.route.join(' > ')}; e=${e.peerId} a=${a.peerId} b=${b.peerId}`)
    assert.ok(r.verification?.ok, JSON.stringify(r.verification))
    assert.equal(r.route, [e.peerId, b.peerId])
  }
  const after = await forwards()
  // one failed dial in all: the jobs after the first go to B first, A's advert notwithstanding
  assert.is((after.peer_unreachable ?? 0) - (before.peer_unreachable ?? 0), 1, JSON.stringify(after))
  assert.is((after.internal ?? 0) - (before.internal ?? 0), 0, JSON.stringify(after))
  assert.is((after.success ?? 0) - (before.success ?? 0), 3)
})

test('no serving peer reachable: PEER_UNREACHABLE naming them, and the gateway says 503 Retry-After', async () => {
  await block('e', [b])
  await until('E hung up on B', () => !connected(e, b), 10_000)
  assert.ok(e.peerTable.query({ model }).length === 2, 'both adverts are still known')
  const err = await job().then(
    () => undefined,
    (x: unknown) => x
  )
  assert.instance(err, InferError, String(err))
  const ie = err as InferError
  assert.is(ie.code, 'PEER_UNREACHABLE', `${ie.code}: ${ie.message}`)
  assert.ok(ie.message.includes(a.peerId) && ie.message.includes(b.peerId), ie.message)
  assert.match(ie.message, /reached none of them, so none charged it; a retry may pick another peer/)
  assert.is(ie.retryAfterMs, 1000)

  const openai = new OpenAI({
    baseURL: `${e.services.gateway!.url!}/v1`,
    apiKey: 'loopback',
    maxRetries: 0,
    timeout: 60_000
  })
  const http = await openai.completions.create({ model, prompt: 'hello', max_tokens: 4 }).then(
    () => undefined,
    (x: unknown) => x
  )
  assert.instance(http, OpenAI.APIError, String(http))
  const h = http as InstanceType<typeof OpenAI.APIError>
  assert.is(h.status, 503)
  assert.is(h.code, 'peer_unreachable')
  assert.is(h.headers?.get('retry-after'), '1')
  assert.match(h.message, /could not dial any of the 2 serving peers/)
  const f = await forwards()
  assert.ok((f.peer_unreachable ?? 0) >= 5, JSON.stringify(f))
})

test('unblocked, the entry serves again', async () => {
  await block('e', [a, b], '/peers/unblock')
  await block('b', [a], '/peers/unblock')
  await until(
    'served again',
    () =>
      job().then(
        (r) => r.verification?.ok === true,
        () => false
      ),
    20_000
  )
})

test.run()
