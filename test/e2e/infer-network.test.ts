// Jobs across four real nodes on 127.0.0.1 (issue 5): routing to the node with the adapter hot,
// fetching a missing adapter by CID from peers (one of them serving wrong bytes), receipts that
// verify and tampered ones that name the field, bad frames that end one stream only, typed limit
// errors, and a serving node killed mid-job. Real libp2p, adverts, engine, ORT and LevelDB.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { InferClient, InferResult } from '../../src/client/client.ts'
import { createClientHost } from '../../src/client/host.ts'
import { requireService } from '../../src/common/service.ts'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import { sha256 } from '../../src/crypto/hash.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { ADAPTER_PROTOCOL } from '../../src/protocols/adapter-exchange/constants.ts'
import { decodeResponseFrame, type ResponseFrame } from '../../src/protocols/infer/codec.ts'
import { INFER_PROTOCOL, MAX_REQUEST_FRAME_BYTES } from '../../src/protocols/infer/constants.ts'
import { InferError } from '../../src/protocols/infer/errors.ts'
import { verifyReceipt } from '../../src/protocols/infer/receipt.ts'
import { emptyCapabilities, StaticCapabilitySource } from '../../src/serving/capability.ts'
import { addrOf, type Fixtures, makeFixtures, sees, serving, startNode, until } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'infer-e2e-'))
let fx: Fixtures
let n1: OpenLoraNode // entry: serves the model, holds no adapter
let n2: OpenLoraNode // serves the model, adapters A and B cold
let n3: OpenLoraNode // adversary: advertises A hot, serves corrupted bytes of it, serves no model
let n4: OpenLoraNode // serves the model, adapter B hot
let client: InferClient
let stopClient: () => Promise<void>
let cidA = ''
let cidB = ''
let model = ''
let evilRequests = 0
const PROMPT = [1, 17, 42, 99, 7, 3, 250]

test.before(async () => {
  fx = await makeFixtures(root)
  n1 = await startNode(root, 'n1', fx, { infer: { maxConcurrentJobsPerPeer: 2 } })
  const boot = [addrOf(n1)]
  n2 = await startNode(root, 'n2', fx, { bootstrap: boot })
  // n4 may run jobs long enough that a cancel always arrives while the job still runs
  n4 = await startNode(root, 'n4', fx, { bootstrap: boot, infer: { maxNewTokens: 480 } })
  model = serving(n1).models()[0]!.modelId
  cidA = (await serving(n2).store()!.import(fx.adapterDirs[0]!)).cid
  cidB = (await serving(n2).store()!.import(fx.adapterDirs[1]!)).cid
  await serving(n4).store()!.import(fx.adapterDirs[1]!)
  await serving(n4).store()!.ensure(cidB)

  // The adversary speaks the adapter protocol with the true manifest but flipped file bytes.
  const cfg = await readFile(join(fx.adapterDirs[0]!, 'adapter_config.json'))
  const weights = await readFile(join(fx.adapterDirs[0]!, 'adapter_model.safetensors'))
  const bad = Uint8Array.from(weights)
  bad[bad.length - 1]! ^= 0xff
  const caps = emptyCapabilities({ cpu: { model: 'test', cores: 1, ramMb: 1 }, gpus: [] })
  n3 = await startNode(root, 'n3', fx, {
    serve: false,
    bootstrap: boot,
    overrides: {
      extensions: [],
      capabilities: new StaticCapabilitySource({ ...caps, adapters: { hot: [cidA], warm: [], cold: [] } }),
      services: {
        evil: (c) => ({
          start: () =>
            c.libp2p.handle(ADAPTER_PROTOCOL, async (stream: Stream) => {
              evilRequests++
              const lp = lpStream(stream)
              await lp.read()
              const files = [
                { name: 'adapter_config.json', size: cfg.length, sha256: sha256(cfg) },
                { name: 'adapter_model.safetensors', size: weights.length, sha256: sha256(weights) }
              ]
              await lp.write(encodeCanonical({ t: 'manifest', files }))
              await lp.write(cfg)
              await lp.write(bad)
              await stream.close()
            })
        })
      }
    }
  })
  ;({ client, stop: stopClient } = await createClientHost())
  await until(
    'n1 sees n4 with B hot, n2 with A, n3 with A',
    () => sees(n1, n4, cidB, ['hot']) && sees(n1, n2, cidA, ['cold']) && sees(n1, n3, cidA, ['hot'])
  )
})

test.after(async () => {
  await stopClient?.()
  for (const n of [n3, n4, n2, n1]) await n?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

/** Greedy tokens from a node's own engine, no network in between. */
async function localTokens(
  node: OpenLoraNode,
  adapter: string | null,
  maxNewTokens: number
): Promise<number[]> {
  const out: number[] = []
  for await (const ev of serving(node).generate({
    model,
    adapter,
    promptIds: PROMPT,
    params: { maxNewTokens }
  }))
    if (ev.type === 'token') out.push(ev.id)
  return out
}

test('a job entering at a node without the adapter is served by the node that has it hot', async () => {
  const r = await client.infer(addrOf(n1), {
    model,
    adapter: cidB,
    promptIds: PROMPT,
    params: { maxNewTokens: 12 }
  })
  assert.is(r.servedBy, n4.peerId)
  assert.equal(r.route, [n1.peerId, n4.peerId])
  assert.ok(r.verification?.ok, JSON.stringify(r.verification))
  assert.is(r.receipt.body.adapter, cidB)
  assert.is(r.outputIds.length, r.receipt.body.outputTokens)
  // the tokens are those n2's own engine gives for B from its disk copy (greedy)
  assert.equal(r.outputIds, await localTokens(n2, cidB, 12))
})

test('a missing adapter is fetched by CID and verified; the peer serving wrong bytes is caught', async () => {
  assert.is(await serving(n1).adapterTier(model, cidA), null)
  const r = await client.infer(addrOf(n1), {
    model,
    adapter: cidA,
    promptIds: PROMPT,
    params: { maxNewTokens: 12 }
  })
  assert.is(r.servedBy, n1.peerId, 'the entry fetched the adapter and served')
  assert.ok(r.verification?.ok)
  assert.ok(evilRequests >= 1, 'the adversary advertising it hot was asked first')
  assert.is((await serving(n1).adapterTier(model, cidA)) !== null, true)
  // its bytes are the true ones: same tokens as n2's engine with A imported from disk
  assert.equal(r.outputIds, await localTokens(n2, cidA, 12))
  // and the adapter changed the output compared with the base model
  const base = await client.infer(addrOf(n1), { model, promptIds: PROMPT, params: { maxNewTokens: 12 } })
  assert.not.equal(base.outputIds, r.outputIds)
})

test('a tampered receipt fails verification naming the field', async () => {
  const r = await client.infer(addrOf(n1), { model, prompt: 'hello there', params: { maxNewTokens: 6 } })
  assert.ok(r.verification?.ok)
  assert.ok(r.text.length > 0)
  const copy = () => JSON.parse(JSON.stringify(r.receipt))
  const t1 = copy()
  t1.body.outputHash = t1.body.inputHash
  const v1 = await verifyReceipt(t1, { outputIds: r.outputIds })
  assert.is(v1.ok ? '' : v1.field, 'outputHash')
  const t2 = copy()
  t2.body.modelId = 'another-model'
  const v2 = await verifyReceipt(t2)
  assert.is(v2.ok ? '' : v2.check, 'peerSignature')
  assert.match(v2.ok ? '' : v2.field, /modelId/)
  const t3 = copy()
  t3.body.amountDue = '999999'
  const v3 = await verifyReceipt(t3)
  assert.is(v3.ok ? '' : v3.field, 'amountDue')
})

async function rawExchange(bytes: Uint8Array, closeWrite = false): Promise<ResponseFrame[]> {
  const { node, stop } = await createClientHost()
  try {
    const s = await node.dialProtocol(multiaddr(addrOf(n1)), INFER_PROTOCOL)
    s.send(bytes)
    if (closeWrite) await s.close()
    const lp = lpStream(s)
    const frames: ResponseFrame[] = []
    try {
      while (true)
        frames.push(decodeResponseFrame((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray()))
    } catch {}
    return frames
  } finally {
    await stop()
  }
}

test('malformed, oversized and truncated frames end that stream only', async () => {
  const over = MAX_REQUEST_FRAME_BYTES + 1
  const prefix = [(over & 0x7f) | 0x80, ((over >> 7) & 0x7f) | 0x80, over >> 14]
  const cases: [string, number[], boolean][] = [
    ['oversized', prefix, false],
    ['not CBOR', [3, 0xff, 0xfe, 0xfd], false],
    ['truncated', [50, 0xa1, 0x61], true]
  ]
  for (const [name, bytes, closeWrite] of cases) {
    const frames = await rawExchange(Uint8Array.from(bytes), closeWrite)
    assert.is(frames[0]?.t, 'error', name)
    assert.is((frames[0] as { code: string }).code, 'BAD_REQUEST', name)
  }
  // the same node goes on serving
  const r = await client.infer(addrOf(n1), { model, promptIds: PROMPT, params: { maxNewTokens: 4 } })
  assert.ok(r.verification?.ok)
})

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (err) {
    assert.instance(err, InferError, String(err))
    return (err as InferError).code
  }
}

test('limits and unknown names return typed errors, never a crash', async () => {
  const unknownCid = 'bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
  assert.is(
    await code(
      client.infer(addrOf(n1), { model: 'no-such-model', prompt: 'x', params: { maxNewTokens: 2 } })
    ),
    'MODEL_NOT_FOUND'
  )
  assert.is(
    await code(
      client.infer(addrOf(n1), { model, adapter: unknownCid, prompt: 'x', params: { maxNewTokens: 2 } })
    ),
    'ADAPTER_NOT_FOUND'
  )
  const long = Array.from({ length: 300 }, (_, i) => 5 + (i % 400))
  assert.is(
    await code(client.infer(addrOf(n1), { model, promptIds: long, params: { maxNewTokens: 2 } })),
    'BAD_REQUEST'
  )
  // n1 takes 2 concurrent jobs per client: of 6 at once, the extra ones are RATE_LIMITED
  const codes = await Promise.all(
    Array.from({ length: 6 }, () =>
      code(client.infer(addrOf(n1), { model, promptIds: PROMPT, params: { maxNewTokens: 40 } }))
    )
  )
  assert.ok(codes.includes('RATE_LIMITED'), codes.join(','))
  assert.ok(codes.includes('ok'), codes.join(','))
  assert.ok(
    codes.every((c) => c === 'ok' || c === 'RATE_LIMITED'),
    codes.join(',')
  )
})

test('a client closing its stream cancels the job on the serving node behind the relay', async () => {
  const before = serving(n4).engine!.metrics().aborted
  const ac = new AbortController()
  let tokens = 0
  const e = await code(
    client.infer(
      addrOf(n1),
      { model, adapter: cidB, promptIds: PROMPT, params: { maxNewTokens: 480 } },
      {
        signal: ac.signal,
        // cancel as soon as the first token shows the job runs: the tiny model makes 480 tokens
        // in well under a second, so a later cancel could arrive after the job had ended
        onToken: () => {
          if (++tokens === 1) ac.abort()
        }
      }
    )
  )
  assert.is(e, 'DEADLINE_EXCEEDED')
  await until('n4 aborted the job', () => serving(n4).engine!.metrics().aborted > before, 10_000)
  await until('n1 and n4 hold no job', () => activeJobs(n1) === 0 && activeJobs(n4) === 0, 10_000)
})

function activeJobs(n: OpenLoraNode): number {
  return requireService(n.services, 'infer').activeJobs
}

test('killing the serving node mid-job gives the client a clean failover or a typed error', async () => {
  // n1 routes B to n4 (hot) or n2 (cold) by their adverts' load; after the previous tests n4 may
  // look busier for a moment, so try a few jobs until one goes to n4 (the others just succeed)
  let killed = false
  let outcome: { ok: true; r: InferResult } | { ok: false; err: unknown } | undefined
  for (let attempt = 0; attempt < 6 && !killed; attempt++) {
    outcome = await client
      .infer(
        addrOf(n1),
        { model, adapter: cidB, promptIds: PROMPT, params: { maxNewTokens: 200 } },
        {
          onAccepted: (a) => {
            if (a.servedBy === n4.peerId && !killed) {
              killed = true
              void n4.stop()
            }
          }
        }
      )
      .then(
        (r) => ({ ok: true as const, r }),
        (err) => ({ ok: false as const, err })
      )
    if (!killed) {
      assert.ok(outcome.ok, `a job served elsewhere failed: ${outcome.ok ? '' : String(outcome.err)}`)
      await new Promise((r) => setTimeout(r, 500))
    }
  }
  outcome = outcome!
  assert.ok(
    killed,
    `the job went to n4 first (${outcome.ok ? `served by ${outcome.r.servedBy}` : String(outcome.err)})`
  )
  if (outcome.ok) {
    assert.is.not(outcome.r.servedBy, n4.peerId)
    assert.ok(outcome.r.verification?.ok, JSON.stringify(outcome.r.verification))
  } else {
    const e = outcome.err as InferError
    assert.instance(e, InferError, `${e?.name}: ${e?.message}`)
    assert.ok(['INTERNAL', 'BUSY'].includes(e.code), `${e.code}: ${e.message}`)
  }
  // the network keeps serving
  const after = await client.infer(addrOf(n1), {
    model,
    adapter: cidB,
    promptIds: PROMPT,
    params: { maxNewTokens: 4 }
  })
  assert.ok(after.verification?.ok)
  assert.is.not(after.servedBy, n4.peerId)
})

test.run()
