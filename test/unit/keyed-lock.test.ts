// KeyedLock orders work per key (the VoucherStore's per-client lock, the datanet store's
// per-datanet lock): same key one at a time in call order, other keys side by side, and a failed
// piece of work never blocks the next one on its key.
import assert from 'node:assert/strict'
import { test } from 'uvu'
import { KeyedLock } from '../../src/common/keyed-lock.ts'

const tick = () => new Promise((r) => setTimeout(r, 5))

test('same key: one at a time, in call order', async () => {
  const lock = new KeyedLock()
  const log: string[] = []
  const step = (name: string) => async () => {
    log.push(`${name} start`)
    await tick()
    log.push(`${name} end`)
    return name
  }
  const got = await Promise.all([
    lock.run('a', step('1')),
    lock.run('a', step('2')),
    lock.run('a', step('3'))
  ])
  assert.deepEqual(got, ['1', '2', '3'])
  assert.deepEqual(log, ['1 start', '1 end', '2 start', '2 end', '3 start', '3 end'])
})

test('different keys run side by side', async () => {
  const lock = new KeyedLock()
  let inside = 0
  let most = 0
  const work = async () => {
    inside++
    most = Math.max(most, inside)
    await tick()
    inside--
  }
  await Promise.all([lock.run('a', work), lock.run('b', work), lock.run('c', work)])
  assert.equal(most, 3)
})

test('a failure is the caller’s and the next work on the key still runs', async () => {
  const lock = new KeyedLock()
  const failed = lock.run('a', async () => {
    await tick()
    throw new Error('boom')
  })
  const next = lock.run('a', async () => 'ran')
  await assert.rejects(failed, /boom/)
  assert.equal(await next, 'ran')
  // and once the queue drained, a new call starts at once
  assert.equal(await lock.run('a', async () => 'again'), 'again')
})

test.run()
