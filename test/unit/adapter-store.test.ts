// AdapterStore tiers on a real LevelDB and real files. The slot pools are a stub of the narrow
// SlotPools interface (one module per unit test) that records what sits in each slot.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { AdapterStore, type TierChange } from '../../src/runtime/adapters/store.ts'
import { type TestAdapter, testAdapterLoader, writeTestAdapter } from './adapter-store-fixture.ts'

class RecordingPools {
  readonly slots: number
  readonly maxRank = 8
  readonly targets = ['q_proj', 'v_proj']
  readonly content: (string | undefined)[]
  writes = 0
  constructor(slots: number) {
    this.slots = slots
    this.content = new Array(slots).fill(undefined)
  }
  write(slot: number, adapter: TestAdapter): void {
    assert.ok(slot >= 1 && slot < this.slots, `slot ${slot} out of range`)
    this.content[slot] = adapter.name
    this.writes += 1
  }
  clear(slot: number): void {
    this.content[slot] = undefined
  }
}

async function setup(
  opts: { slots?: number; warmBudgetBytes?: number; modelId?: string; dir?: string } = {}
) {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'adapter-store-')))
  const pools = new RecordingPools(opts.slots ?? 4)
  const loader = testAdapterLoader()
  const store = new AdapterStore<TestAdapter>(
    { dir: join(dir, 'store'), warmBudgetBytes: opts.warmBudgetBytes },
    { model: { modelId: opts.modelId ?? 'tiny', config: {}, pools }, loadAdapter: loader.load }
  )
  await store.start()
  return { dir, pools, loader, store }
}

test('import registers cold; ensure reports cold, then hot; evicted from hot it comes back from warm', async () => {
  const { dir, pools, store } = await setup({ slots: 3 })
  try {
    const changes: TierChange[] = []
    store.addEventListener('changed', (e) => changes.push((e as CustomEvent<TierChange>).detail))
    const cids: string[] = []
    for (let i = 0; i < 3; i++) cids.push((await store.import(await writeTestAdapter(dir, `a${i}`))).cid)
    assert.equal(store.tiers(), { hot: [], warm: [], cold: 3 })
    assert.equal(
      changes.map((c) => c.tier),
      ['cold', 'cold', 'cold']
    )

    const first = await store.ensure(cids[0]!)
    assert.is(first.from, 'cold')
    assert.is(pools.content[first.slot], 'a0')
    assert.is((await store.ensure(cids[0]!)).from, 'hot')
    await store.ensure(cids[1]!)
    // two usable slots: the third adapter evicts the least recently used (a0)
    const third = await store.ensure(cids[2]!)
    assert.is(third.slot, first.slot)
    assert.is(store.tierOf(cids[0]!), 'warm')
    assert.equal(store.tiers().hot.sort(), [cids[1]!, cids[2]!].sort())
    assert.equal(store.tiers().warm, [cids[0]!])
    assert.is((await store.ensure(cids[0]!)).from, 'warm')
    const s = store.stats()
    assert.equal(s.hits, { cold: 3, warm: 1, hot: 1 })
    assert.is(s.evictions.hot, 2)
    assert.ok(changes.some((c) => c.cid === cids[0] && c.tier === 'warm'))
  } finally {
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test('warm tier stays within its byte budget and drops the least recently used', async () => {
  const { dir, store } = await setup({ slots: 2, warmBudgetBytes: 2.5 * 4096 })
  try {
    const cids: string[] = []
    for (let i = 0; i < 3; i++) cids.push((await store.import(await writeTestAdapter(dir, `w${i}`))).cid)
    for (const cid of cids) await store.ensure(cid)
    const s = store.stats()
    assert.ok(s.warmBytes <= s.warmBudgetBytes, `${s.warmBytes} > ${s.warmBudgetBytes}`)
    assert.is(s.warm, 2)
    assert.is(s.evictions.warm, 1)
    // w0 left both RAM tiers: it loads from disk again
    assert.is((await store.ensure(cids[0]!)).from, 'cold')
  } finally {
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test('concurrent acquires of one cold adapter load it once and share the slot', async () => {
  const { dir, loader, store } = await setup()
  try {
    const { cid } = await store.import(await writeTestAdapter(dir, 'c'))
    const loadsBefore = loader.calls
    const leases = await Promise.all(Array.from({ length: 8 }, () => store.acquire(cid)))
    assert.is(loader.calls - loadsBefore, 1)
    assert.is(new Set(leases.map((l) => l.slot)).size, 1)
    assert.is(store.stats().coldLoads, 1)
    assert.is(store.stats().sharedLoads, 7)
    for (const l of leases) l.release()
    assert.is(store.stats().hotPinned, 0)
  } finally {
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test('eviction never touches a slot in use; a released slot is reused', async () => {
  const { dir, pools, store } = await setup({ slots: 3 })
  try {
    const cids: string[] = []
    for (let i = 0; i < 3; i++) cids.push((await store.import(await writeTestAdapter(dir, `p${i}`))).cid)
    const l0 = await store.acquire(cids[0]!)
    const l1 = await store.acquire(cids[1]!)
    const before = [...pools.content]
    try {
      await store.acquire(cids[2]!)
      assert.unreachable('all slots are pinned')
    } catch (err) {
      assert.is((err as { code?: string }).code, 'NO_FREE_SLOT')
    }
    assert.equal(pools.content, before)
    l0.release()
    l0.release() // idempotent: must not unpin someone else's hold
    const l2 = await store.acquire(cids[2]!)
    assert.is(l2.slot, l0.slot)
    assert.is(pools.content[l1.slot], 'p1')
    try {
      await store.remove(cids[1]!)
      assert.unreachable('a pinned adapter cannot be removed')
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ADAPTER_INVALID')
    }
    l1.release()
    l2.release()
    assert.ok(await store.remove(cids[1]!))
    assert.is(pools.content[l1.slot], undefined)
    assert.not.ok(await store.has(cids[1]!))
  } finally {
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test('import checks: idempotent, CID pinned by the caller, rank and targets against the pool', async () => {
  const { dir, store } = await setup()
  try {
    const a = await writeTestAdapter(dir, 'x')
    const r1 = await store.import(a)
    const r2 = await store.import(a)
    assert.equal([r1.added, r2.added], [true, false])
    assert.is(r1.cid, r2.cid)
    assert.is(store.stats().registered, 1)
    const files = await store.files(r1.cid)
    await store.remove(r1.cid)
    const wrong = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
    try {
      await store.importFiles(files, { expectedCid: wrong })
      assert.unreachable()
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ADAPTER_CID_MISMATCH')
    }
    assert.is((await store.importFiles(files, { expectedCid: r1.cid })).cid, r1.cid)
    try {
      await store.import(await writeTestAdapter(dir, 'big', { rank: 16 }))
      assert.unreachable()
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ADAPTER_RANK_TOO_LARGE')
      assert.match((err as Error).message, /rank 16.*up to 8/)
    }
    try {
      await store.import(await writeTestAdapter(dir, 'mlp', { targets: ['q_proj', 'down_proj'] }))
      assert.unreachable()
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ADAPTER_TARGET_UNSUPPORTED')
    }
    assert.is(store.stats().registered, 1)
    try {
      await store.ensure('bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')
      assert.unreachable()
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ADAPTER_NOT_FOUND')
    }
  } finally {
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test('10,000 registered adapters: reopening reads totals without scanning the index', async () => {
  const first = await setup()
  const dir = first.dir
  const real = await first.store.import(await writeTestAdapter(dir, 'real'))
  const entries = Array.from({ length: 10_000 }, (_, i) => ({
    cid: `bafkfake${i.toString().padStart(8, '0')}`,
    baseModel: 'tiny',
    rank: 8,
    targets: ['q_proj', 'v_proj'],
    sizeBytes: 100,
    fp32Bytes: 4096,
    addedAt: 0
  }))
  await first.store.registerIndexOnly(entries)
  await first.store.stop()

  // count every iterator the reopened index creates: start-up and lookups must create none
  const proto = Object.getPrototypeOf(Object.getPrototypeOf(new Level(join(dir, 'probe'))))
  const origIterator = proto.iterator
  const origValues = proto.values
  const origKeys = proto.keys
  let scans = 0
  proto.iterator = function (...args: unknown[]) {
    scans += 1
    return origIterator.apply(this, args)
  }
  proto.values = function (...args: unknown[]) {
    scans += 1
    return origValues.apply(this, args)
  }
  proto.keys = function (...args: unknown[]) {
    scans += 1
    return origKeys.apply(this, args)
  }
  const again = await setup({ dir })
  try {
    assert.is(again.store.stats().registered, 10_001)
    assert.ok((await again.store.entry('bafkfake00009999')) !== undefined)
    assert.is((await again.store.ensure(real.cid)).from, 'cold')
    assert.is(scans, 0)
    const page = await again.store.listCold({ limit: 5, after: 'bafkfake00000100' })
    assert.equal(
      page.map((e) => e.cid),
      ['bafkfake00000101', 'bafkfake00000102', 'bafkfake00000103', 'bafkfake00000104', 'bafkfake00000105']
    )
  } finally {
    proto.iterator = origIterator
    proto.values = origValues
    proto.keys = origKeys
    await again.store.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test('an adapter registered for another base model is refused with both names', async () => {
  const first = await setup({ modelId: 'model-a' })
  const { cid } = await first.store.import(await writeTestAdapter(first.dir, 'm'))
  await first.store.stop()
  const other = await setup({ modelId: 'model-b', dir: first.dir })
  try {
    await other.store.ensure(cid)
    assert.unreachable()
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ADAPTER_BASE_MISMATCH')
    assert.match((err as Error).message, /model-a.*model-b/)
  } finally {
    await other.store.stop()
    await rm(first.dir, { recursive: true, force: true })
  }
})

test('a store directory another store holds open is refused with STORE_LOCKED', async () => {
  const first = await setup()
  try {
    const pools = new RecordingPools(4)
    const second = new AdapterStore<TestAdapter>(
      { dir: join(first.dir, 'store') },
      { model: { modelId: 'tiny', config: {}, pools }, loadAdapter: testAdapterLoader().load }
    )
    try {
      await second.start()
      assert.unreachable()
    } catch (err) {
      assert.is((err as { code?: string }).code, 'STORE_LOCKED')
      assert.match((err as Error).message, /in use by another process/)
    }
  } finally {
    await first.store.stop()
    await rm(first.dir, { recursive: true, force: true })
  }
})

test.run()
