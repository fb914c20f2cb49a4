import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import { toHex } from '../../src/crypto/hash.ts'
import { BindingVerifier } from '../../src/protocols/adverts/binding.ts'
import { bloomHas, createBloom } from '../../src/protocols/adverts/bloom.ts'
import { advertSigningBytes, decodeAdvert, signAdvert, tierHas } from '../../src/protocols/adverts/codec.ts'
import { MAX_ADVERT_BYTES, MAX_TTL_MS } from '../../src/protocols/adverts/constants.ts'
import { type ValidateContext, validateAdvert } from '../../src/protocols/adverts/validate.ts'
import { fakeCids, testAdvert, testPeer } from './advert-fixture.ts'

const bindings = new BindingVerifier()
const ctx = (from: string | undefined, patch: Partial<ValidateContext> = {}): ValidateContext => ({
  from,
  now: Date.now(),
  latestSeq: () => undefined,
  bindings,
  ...patch
})

test('an advert round-trips through its canonical encoding and verifies', async () => {
  const p = await testPeer()
  const adv = await testAdvert(p, {
    caps: {
      models: [
        { id: 'tiny-llama', weightsHash: `0x${'ab'.repeat(32)}`, family: 'llama' },
        { id: 'older-node-model', weightsHash: `0x${'cd'.repeat(32)}` }
      ],
      adapters: { hot: fakeCids(2, 'h'), warm: [], cold: fakeCids(3, 'c') },
      queueDepth: 3,
      freeSlots: 5,
      pricePer1kTokens: '1000000000000000'
    },
    seq: 7
  })
  const back = decodeAdvert(adv.bytes)
  assert.equal(back.body, adv.body)
  assert.equal(toHex(back.sig), toHex(adv.sig))
  const v = await validateAdvert(adv.bytes, ctx(p.peerId))
  assert.is(v.action, 'accept')
  if (v.action === 'accept') {
    assert.is(v.advert.body.seq, 7)
    // the family travels with the model; an advert without one (an older node) still verifies
    assert.is(v.advert.body.models[0]!.family, 'llama')
    assert.is(v.advert.body.models[1]!.family, undefined)
    assert.is(v.advert.body.adapters.hot.count, 2)
    assert.is(tierHas(v.advert.body.adapters.cold, fakeCids(3, 'c')[2]!), 'list')
  }
})

test('a model family that is not a registry key is refused', async () => {
  const p = await testPeer()
  const adv = await testAdvert(p, {
    caps: { models: [{ id: 'm', weightsHash: `0x${'ab'.repeat(32)}`, family: 'Llama 3!' }] }
  })
  const v = await validateAdvert(adv.bytes, ctx(p.peerId))
  assert.is(v.action, 'reject')
  if (v.action === 'reject') assert.match(v.message, /models\[0\]\.family/)
})

test('10,000 adapters fit one advert: listed up to the limit, Bloom-filtered beyond', async () => {
  const p = await testPeer()
  const cold = fakeCids(10_000, 'x')
  const adv = await testAdvert(p, { caps: { adapters: { hot: fakeCids(8, 'h'), warm: [], cold } } })
  assert.ok(adv.bytes.length <= MAX_ADVERT_BYTES, `advert is ${adv.bytes.length} bytes`)
  const body = decodeAdvert(adv.bytes).body
  assert.is(body.adapters.cold.count, 10_000)
  assert.is(body.adapters.cold.list.length, 64)
  assert.ok(body.adapters.cold.bloom)
  // every member is found; the listed ones exactly, the rest by the filter
  assert.is(tierHas(body.adapters.cold, cold[0]!), 'list')
  for (const c of cold) assert.ok(tierHas(body.adapters.cold, c) !== null)
  // non-members are mostly absent (1% target false-positive rate; allow 3%)
  const others = fakeCids(2_000, 'y')
  const fp = others.filter((c) => tierHas(body.adapters.cold, c) !== null).length
  assert.ok(fp < 60, `${fp} false positives of 2000`)
})

test('a Bloom filter holds what was put in it', () => {
  const items = fakeCids(500)
  const f = createBloom(items, items.length)
  assert.ok(items.every((i) => bloomHas(f, i)))
  assert.is(bloomHas(createBloom([], 0), 'anything'), false)
})

test('REJECT: oversized', async () => {
  const p = await testPeer()
  const v = await validateAdvert(new Uint8Array(MAX_ADVERT_BYTES + 1), ctx(p.peerId))
  assert.equal(v.action === 'reject' && v.reason, 'oversized')
})

test('REJECT: malformed (not CBOR) and schema errors', async () => {
  const p = await testPeer()
  const junk = await validateAdvert(new Uint8Array([0xff, 0x00, 0x13]), ctx(p.peerId))
  assert.equal(junk.action === 'reject' && junk.reason, 'malformed')
  const adv = await testAdvert(p)
  const cases: Array<[string, (b: Record<string, unknown>) => void]> = [
    ['queueDepth', (b) => (b.queueDepth = -1)],
    ['pricePer1kTokens', (b) => (b.pricePer1kTokens = '1.5')],
    ['executionProvider', (b) => (b.executionProvider = 'tpu')],
    ['operator', (b) => (b.operator = '0x1234')],
    ['addrs', (b) => (b.addrs = Array(9).fill('/ip4/1.2.3.4/tcp/1'))],
    ['adapters.hot.list', (b) => ((b.adapters as { hot: { count: number } }).hot.count = 5)],
    ['peerId', (b) => (b.peerId = 'not-a-peer-id')],
    ['expires', (b) => (b.expires = b.ts)],
    [
      'hardware.gpus[0].memoryMb',
      (b) => ((b.hardware as { gpus: unknown[] }).gpus = [{ name: 'x', driver: 'y' }])
    ],
    [
      'adapters.cold.bloom.bits',
      (b) => {
        const cold = (b.adapters as { cold: Record<string, unknown> }).cold
        Object.assign(cold, { count: 100, list: [], bloom: { bits: 64, k: 3, data: new Uint8Array(16) } })
      }
    ]
  ]
  for (const [field, mutate] of cases) {
    const body = structuredClone(adv.body) as unknown as Record<string, unknown>
    mutate(body)
    const bytes = encodeCanonical({ body, sig: adv.sig })
    const v = await validateAdvert(bytes, ctx(p.peerId))
    assert.equal(v.action === 'reject' && v.reason, 'schema', field)
    assert.ok(
      v.action === 'reject' && v.message.includes(field),
      `${field}: ${v.action === 'reject' && v.message}`
    )
  }
})

test('unknown body fields are kept and signed (a later version may add optional ones)', async () => {
  const p = await testPeer()
  const adv = await testAdvert(p)
  const body = { ...adv.body, gpuSharing: { mig: true } }
  const signed = await signAdvert(body, p.key)
  const back = decodeAdvert(signed.bytes)
  assert.equal((back.body as Record<string, unknown>).gpuSharing, { mig: true })
  const v = await validateAdvert(signed.bytes, ctx(p.peerId))
  assert.is(v.action, 'accept')
})

test('REJECT: not canonical CBOR (same content, keys out of order)', async () => {
  const p = await testPeer()
  const adv = await testAdvert(p)
  // Canonical order sorts the shorter key "sig" first; hand-build map(2) with "body" first:
  // valid CBOR, same data, non-canonical.
  const sigPart = encodeCanonical({ sig: adv.sig }).subarray(1)
  const bodyPart = encodeCanonical({ body: adv.body }).subarray(1)
  const bytes = new Uint8Array([0xa2, ...bodyPart, ...sigPart])
  const v = await validateAdvert(bytes, ctx(p.peerId))
  assert.equal(v.action === 'reject' && v.reason, 'not-canonical')
})

test('REJECT: bad peer signature (body changed after signing)', async () => {
  const p = await testPeer()
  const adv = await testAdvert(p)
  const body = { ...adv.body, freeSlots: adv.body.freeSlots + 10 }
  const v = await validateAdvert(encodeCanonical({ body, sig: adv.sig }), ctx(p.peerId))
  assert.equal(v.action === 'reject' && v.reason, 'bad-signature')
})

test('REJECT: advert signed by another key than the advertised peer', async () => {
  const p = await testPeer()
  const mallory = await testPeer()
  const adv = await testAdvert(p)
  const sig = await mallory.key.sign(advertSigningBytes(adv.body))
  const v = await validateAdvert(encodeCanonical({ body: adv.body, sig }), ctx(p.peerId))
  assert.equal(v.action === 'reject' && v.reason, 'bad-signature')
})

test('REJECT: operator binding made for another peer', async () => {
  const p = await testPeer()
  const q = await testPeer()
  const adv = await testAdvert(p)
  // p claims q's operator with q's binding signature (which names q's peer id)
  const body = { ...adv.body, operator: q.account.address, operatorSig: q.binding }
  const resigned = await signAdvert(body, p.key)
  const v = await validateAdvert(resigned.bytes, ctx(p.peerId))
  assert.equal(v.action === 'reject' && v.reason, 'bad-operator-binding')
})

test('REJECT: relayed under a different `from` than the advertised peer', async () => {
  const p = await testPeer()
  const mallory = await testPeer()
  const adv = await testAdvert(p)
  const v = await validateAdvert(adv.bytes, ctx(mallory.peerId))
  assert.equal(v.action === 'reject' && v.reason, 'from-mismatch')
  const anon = await validateAdvert(adv.bytes, ctx(undefined))
  assert.equal(anon.action === 'reject' && anon.reason, 'from-mismatch')
})

test('REJECT: lifetime beyond the cap', async () => {
  const p = await testPeer()
  const adv = await testAdvert(p, { ttlMs: MAX_TTL_MS + 1 })
  const v = await validateAdvert(adv.bytes, ctx(p.peerId))
  assert.is(v.action, 'reject')
})

test('IGNORE: stale or replayed sequence, expired, from the future, our own', async () => {
  const p = await testPeer()
  const adv = await testAdvert(p, { seq: 5 })
  const replay = await validateAdvert(adv.bytes, ctx(p.peerId, { latestSeq: () => 5 }))
  assert.equal(replay.action === 'ignore' && replay.reason, 'stale-sequence')
  const older = await validateAdvert(adv.bytes, ctx(p.peerId, { latestSeq: () => 9 }))
  assert.equal(older.action === 'ignore' && older.reason, 'stale-sequence')
  const newer = await validateAdvert(adv.bytes, ctx(p.peerId, { latestSeq: () => 4 }))
  assert.is(newer.action, 'accept')
  const expired = await validateAdvert(adv.bytes, ctx(p.peerId, { now: adv.body.expires }))
  assert.equal(expired.action === 'ignore' && expired.reason, 'expired')
  const future = await testAdvert(p, { now: Date.now() + 120_000 })
  const f = await validateAdvert(future.bytes, ctx(p.peerId))
  assert.equal(f.action === 'ignore' && f.reason, 'future-timestamp')
  const own = await validateAdvert(adv.bytes, ctx(p.peerId, { self: p.peerId }))
  assert.equal(own.action === 'ignore' && own.reason, 'own-advert')
})

test('IGNORE: a newer advert signed too soon after the held one (flood limit), unless relayed by sync', async () => {
  const p = await testPeer()
  const now = Date.now()
  const adv = await testAdvert(p, { seq: 6, now })
  const held = { latestSeq: () => 5, latestTs: () => now - 99 }
  const v = await validateAdvert(adv.bytes, ctx(p.peerId, held))
  assert.equal(v.action === 'ignore' && v.reason, 'too-frequent')
  const ok = await validateAdvert(adv.bytes, ctx(p.peerId, { latestSeq: () => 5, latestTs: () => now - 100 }))
  assert.is(ok.action, 'accept')
  const relayed = await validateAdvert(adv.bytes, ctx(undefined, { ...held, relayed: true }))
  assert.is(relayed.action, 'accept')
})

test('signing refuses an advert over the size limit', async () => {
  const p = await testPeer()
  // 300 listed adapters per tier × 3 tiers of long CIDs exceed 64 KiB
  const big = fakeCids(300, 'z').map((c) => c + 'q'.repeat(60))
  await testAdvert(p, { caps: { adapters: { hot: big, warm: big, cold: big } }, listLimit: 300 }).then(
    () => assert.unreachable('should have thrown'),
    (err: Error & { reason?: string }) => assert.is(err.reason, 'oversized')
  )
})

test.run()
