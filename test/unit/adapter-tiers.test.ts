// The AdapterStore's warm and hot tiers on their own: the warm tier evicts least recently used
// adapters past its byte budget (never the one just put), the hot tier hands out low slots first,
// takes the least recently used unpinned slot when full and never a pinned one.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { HotSlots } from '../../src/runtime/adapters/hot.ts'
import { WarmTier } from '../../src/runtime/adapters/warm.ts'

test('warm: LRU eviction within the byte budget; get makes an adapter the youngest', () => {
  const warm = new WarmTier<string>(30)
  assert.equal(warm.put('a', 'A', 10), [])
  assert.equal(warm.put('b', 'B', 10), [])
  assert.equal(warm.put('c', 'C', 10), [])
  assert.is(warm.get('a'), 'A') // a is now the youngest: b goes first
  assert.equal(warm.put('d', 'D', 15), ['b', 'c'])
  assert.equal(warm.cids(), ['a', 'd'])
  assert.is(warm.bytes, 25)
  assert.is(warm.get('b'), undefined)
  // an adapter bigger than the budget stays (the caller drops it), evicting all the others
  assert.equal(warm.put('big', 'BIG', 40), ['a', 'd'])
  assert.ok(warm.overBudget())
  warm.delete('big')
  assert.is(warm.bytes, 0)
  assert.is(warm.size, 0)
})

test('hot: low slots first, the LRU unpinned slot when full, nothing when all are pinned', () => {
  const hot = new HotSlots(4) // slot 0 is "no adapter": 3 usable
  for (const cid of ['a', 'b', 'c']) {
    const t = hot.take()!
    assert.is(t.evicted, undefined)
    hot.assign(cid, t.slot)
  }
  assert.equal([hot.slotOf('a'), hot.slotOf('b'), hot.slotOf('c')], [1, 2, 3])
  hot.touch('a') // b is now the least recently used
  hot.pin(hot.slotOf('b')!)
  const t = hot.take()! // b is pinned: c goes
  assert.equal(t, { slot: 3, evicted: 'c' })
  hot.assign('d', t.slot)
  assert.equal(hot.cids(), ['b', 'a', 'd'])
  hot.pin(1)
  hot.pin(3)
  assert.is(hot.pinnedCount(), 3)
  assert.is(hot.take(), undefined)
  hot.unpin(3)
  assert.ok(!hot.pinned(3))
  assert.is(hot.evict(3), 'd')
  assert.equal(hot.take(), { slot: 3 })
})

test.run()
