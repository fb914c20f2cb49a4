import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { PeerTable } from '../../src/protocols/adverts/peer-table.ts'
import { fakeCids, testAdvert, testPeer } from './advert-fixture.ts'

const HASH_A = `0x${'aa'.repeat(32)}` as const
const HASH_B = `0x${'bb'.repeat(32)}` as const

test('entries expire at their advert expiry and are swept out', async () => {
  let now = 1_000_000
  const table = new PeerTable({ now: () => now })
  const p = await testPeer()
  assert.ok(await table.put(await testAdvert(p, { now, ttlMs: 10_000 })))
  assert.ok(table.get(p.peerId))
  now += 9_999
  assert.is(table.query().length, 1)
  now += 1
  assert.is(table.get(p.peerId), undefined)
  assert.is(table.query().length, 0)
  assert.is(await table.sweep(), 1)
  assert.is(table.size, 0)
})

test('a newer sequence replaces the entry; an older or equal one does not', async () => {
  const table = new PeerTable()
  const p = await testPeer()
  assert.ok(await table.put(await testAdvert(p, { seq: 5, caps: { queueDepth: 1 } })))
  assert.not.ok(await table.put(await testAdvert(p, { seq: 5, caps: { queueDepth: 2 } })))
  assert.not.ok(await table.put(await testAdvert(p, { seq: 4, caps: { queueDepth: 3 } })))
  assert.is(table.get(p.peerId)?.advert.body.queueDepth, 1)
  assert.ok(await table.put(await testAdvert(p, { seq: 6, caps: { queueDepth: 4 } })))
  assert.is(table.get(p.peerId)?.advert.body.queueDepth, 4)
  assert.is(table.latestSeq(p.peerId), 6)
})

test('queries by adapter (tiers, Bloom), model, price and load, best first', async () => {
  const table = new PeerTable()
  const [a, b, c, d] = await Promise.all([testPeer(), testPeer(), testPeer(), testPeer()])
  const target = fakeCids(1, 't')[0]!
  const many = [...fakeCids(200, 'm'), target] // target beyond the 64-entry list: Bloom only
  await table.put(
    await testAdvert(a!, {
      caps: {
        adapters: { hot: [], warm: [], cold: [target] },
        models: [{ id: 'llama', weightsHash: HASH_A }],
        pricePer1kTokens: '100'
      }
    })
  )
  await table.put(
    await testAdvert(b!, {
      caps: {
        adapters: { hot: [target], warm: [], cold: [] },
        models: [{ id: 'llama', weightsHash: HASH_A }],
        queueDepth: 4,
        freeSlots: 0,
        pricePer1kTokens: '300'
      }
    })
  )
  await table.put(
    await testAdvert(c!, {
      caps: {
        adapters: { hot: [], warm: many, cold: [] },
        models: [{ id: 'qwen', weightsHash: HASH_B }],
        freeSlots: 8,
        pricePer1kTokens: '50'
      }
    })
  )
  await table.put(await testAdvert(d!, { caps: { models: [{ id: 'llama', weightsHash: HASH_A }] } }))

  const byAdapter = table.query({ adapter: target })
  assert.equal(
    byAdapter.map((m) => [m.peerId, m.tier, m.match]),
    [
      [b!.peerId, 'hot', 'list'],
      [c!.peerId, 'warm', 'bloom'],
      [a!.peerId, 'cold', 'list']
    ]
  )
  assert.equal(
    table.query({ adapter: target, tiers: ['hot', 'warm'] }).map((m) => m.peerId),
    [b!.peerId, c!.peerId]
  )
  assert.is(table.query({ adapter: fakeCids(1, 'nope')[0]! }).length, 0)
  assert.equal(
    new Set(table.query({ model: 'llama' }).map((m) => m.peerId)),
    new Set([a!.peerId, b!.peerId, d!.peerId])
  )
  assert.equal(
    table.query({ model: HASH_B }).map((m) => m.peerId),
    [c!.peerId]
  )
  assert.equal(
    new Set(table.query({ adapter: target, maxPrice: 100n }).map((m) => m.peerId)),
    new Set([a!.peerId, c!.peerId])
  )
  assert.equal(
    table.query({ adapter: target, maxQueueDepth: 0 }).map((m) => m.peerId),
    [c!.peerId, a!.peerId]
  )
  assert.equal(
    table.query({ minFreeSlots: 1 }).map((m) => m.peerId),
    [c!.peerId]
  )
  // without an adapter, the least loaded peer comes first (c has 8 free slots)
  assert.is(table.query({ model: 'llama', exclude: [d!.peerId] })[0]!.peerId, a!.peerId)
  assert.is(table.query({ limit: 2 }).length, 2)
})

test('the table persists to LevelDB and a restart starts warm, dropping expired entries', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'openlora-pt-'))
  try {
    const db = new Level<string, Uint8Array>(dir, { valueEncoding: 'view' })
    const store = db.sublevel<string, Uint8Array>('peers', { valueEncoding: 'view' })
    const t1 = new PeerTable({ store })
    await t1.start()
    const live = await testPeer()
    const shortLived = await testPeer()
    await t1.put(await testAdvert(live, { seq: 3, ttlMs: 60_000 }))
    await t1.put(await testAdvert(shortLived, { ttlMs: 1_000 }))
    await t1.stop() // flushes the write-behind batch
    await db.close()

    const db2 = new Level<string, Uint8Array>(dir, { valueEncoding: 'view' })
    const store2 = db2.sublevel<string, Uint8Array>('peers', { valueEncoding: 'view' })
    const t2 = new PeerTable({ store: store2, now: () => Date.now() + 5_000 })
    await t2.start()
    assert.is(t2.size, 1)
    assert.is(t2.latestSeq(live.peerId), 3)
    assert.is(t2.get(shortLived.peerId), undefined)
    let keys = 0
    for await (const _ of store2.keys()) keys++
    assert.is(keys, 1, 'expired entry removed from the store')
    await t2.stop()
    await db2.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('update events fire for accepted adverts only', async () => {
  const table = new PeerTable()
  const p = await testPeer()
  const seen: string[] = []
  table.addEventListener('update', (e) => seen.push((e as CustomEvent<{ peerId: string }>).detail.peerId))
  await table.put(await testAdvert(p, { seq: 2 }))
  await table.put(await testAdvert(p, { seq: 1 }))
  assert.equal(seen, [p.peerId])
})

test.run()
