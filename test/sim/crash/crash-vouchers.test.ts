// kill -9 of a real process in the middle of voucher+receipt writes on a real LevelDB loses
// nothing it acknowledged, and never leaves a torn record: after every crash the channel's owed
// total equals the sum of the stored receipts, and every acknowledged job is there.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import { privateKeyToAccount } from 'viem/accounts'
import { VoucherStore } from '../../../src/chain/store.ts'
import { channelKey } from '../../../src/chain/vouchers.ts'
import { startWorker } from '../../helpers/crash.ts'

const CLIENT_KEY = `0x${'11'.repeat(32)}` as const
const NODE = '0x00000000000000000000000000000000000000a1'
const ADAPTER = `0x${'aa'.repeat(32)}` as const
const SETTLEMENT = '0x00000000000000000000000000000000000000b2'
let dir: string

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'crash-vouchers-'))
})
test.after(() => rmSync(dir, { recursive: true, force: true }))

test('kill -9 during voucher/receipt writes: every acknowledged job survives, owed = Σ receipts', async () => {
  const dbDir = join(dir, 'db')
  const channel = channelKey(privateKeyToAccount(CLIENT_KEY).address, NODE, ADAPTER)
  const acked = new Map<number, bigint>()
  let from = 1
  for (let round = 0; round < 6; round++) {
    const w = startWorker(['vouchers', dbDir], {
      CRASH_CLIENT_KEY: CLIENT_KEY,
      CRASH_NODE: NODE,
      CRASH_ADAPTER: ADAPTER,
      CRASH_SETTLEMENT: SETTLEMENT,
      CRASH_FROM: String(from)
    })
    // a different number of writes each round, so the kill lands at different points of a write
    const want = 15 + round * 7
    await w.until((a) => a.length >= want)
    await w.kill9()
    for (const [n, owed] of w.acks) acked.set(Number(n), BigInt(owed as string))

    const db = new Level<string, string>(dbDir)
    await db.open() // a clean open after SIGKILL: LevelDB replays its log
    const store = new VoucherStore(db)
    const rec = await store.getChannel(channel)
    assert.ok(rec, 'channel record present')
    const receipts = await store.receiptsFor(channel, 0n, BigInt(rec.owed ?? '0'))
    const sum = receipts.reduce((s, r) => s + BigInt(r.amountDue), 0n)
    assert.equal(BigInt(rec.owed ?? '0'), sum, 'owed equals the sum of the stored receipts (no torn batch)')
    const stored = new Set(receipts.map((r) => Number.parseInt(r.jobId, 16)))
    for (const n of acked.keys()) assert.ok(stored.has(n), `acknowledged job ${n} survived the crash`)
    const maxAcked = Math.max(...acked.keys())
    assert.ok(BigInt(rec.owed ?? '0') >= (acked.get(maxAcked) ?? 0n))
    // the voucher stored covers what is owed (the claim will be accepted)
    assert.ok(BigInt(rec.latest.cumulativeAmount) >= BigInt(rec.owed ?? '0'))
    await db.close()
    // the next run redoes an unacknowledged job if one was written: idempotent, never double-owed
    from = maxAcked + 1
  }
  assert.ok(acked.size >= 6 * 15)
})

test.run()
