// VoucherStore on a real LevelDB in a temp dir: payments are recorded atomically with their
// receipts, survive a reopen, only ever grow per channel, claimed amounts only move up, and what
// is left to claim is what the receipts owe, never the vouchers' signed maxima.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { signVoucher } from '../../src/chain/eip712.ts'
import { VoucherRejectedError } from '../../src/chain/errors.ts'
import { VoucherStore } from '../../src/chain/store.ts'
import { channelKey } from '../../src/chain/vouchers.ts'

const domain = { chainId: 31337, settlement: '0x5FbDB2315678afecb367f032d93F642f64180aa3' as const }
const client = privateKeyToAccount(generatePrivateKey())
const other = privateKeyToAccount(generatePrivateKey())
const node = privateKeyToAccount(generatePrivateKey())
const adapterId = `0x${'ab'.repeat(32)}` as const
const job = (n: number) => `0x${n.toString(16).padStart(32, '0')}` as const
const voucher = (amount: bigint, who = client) =>
  signVoucher(who, domain, { node: node.address, adapterId, cumulativeAmount: amount })

let dir: string
test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'openlora-store-'))
})
test.after.each(() => {
  rmSync(dir, { recursive: true, force: true })
})

test('records, survives a reopen, refuses a voucher that does not grow, and owes only receipts', async () => {
  let db = new Level<string, string>(dir)
  let store = new VoucherStore(db.sublevel('chain'))
  // vouchers are signed maxima: 300 then 400, while the jobs cost 100 and 150
  const r1 = await store.recordPayment(await voucher(300n), { jobId: job(1), amountDue: 100n })
  assert.equal(r1.increase, 100n)
  const r2 = await store.recordPayment(await voucher(400n), { jobId: job(2), amountDue: 150n })
  assert.equal(r2.increase, 150n)
  assert.equal(r2.owed, 250n)
  await assert.rejects(
    store.recordPayment(await voucher(399n)),
    (e: unknown) => e instanceof VoucherRejectedError && e.code === 'NOT_INCREASING'
  )
  // the same voucher for another job: fine while its maximum covers what is owed, then UNDERPAID
  await assert.rejects(
    store.recordPayment(await voucher(400n), { jobId: job(3), amountDue: 151n }),
    (e: unknown) => e instanceof VoucherRejectedError && e.code === 'UNDERPAID'
  )
  // recording the same job again changes nothing
  assert.equal(
    (await store.recordPayment(await voucher(400n), { jobId: job(2), amountDue: 150n })).owed,
    250n
  )
  await db.close()

  db = new Level<string, string>(dir)
  store = new VoucherStore(db.sublevel('chain'))
  const ch = channelKey(client.address, node.address, adapterId)
  assert.equal((await store.getChannel(ch))?.latest.cumulativeAmount, '400')
  assert.equal((await store.getChannel(ch))?.owed, '250')
  // receipts are ordered by the channel's owed total with each job
  assert.deepEqual(
    (await store.receiptsFor(ch, 0n, 250n)).map((r) => r.jobId),
    [job(1), job(2)]
  )
  assert.deepEqual(
    (await store.receiptsFor(ch, 100n, 250n)).map((r) => r.jobId),
    [job(2)]
  )
  // what a claim takes: the owed 250 under the 400 voucher, not the voucher's 400
  const [u] = await store.unclaimed(node.address)
  assert.equal(u?.unclaimed, 250n)
  assert.equal(u?.amount, 250n)
  assert.equal(u?.voucher.cumulativeAmount, 400n)
  await db.close()
})

test('a channel new to the store starts from the baseline (what the chain already paid)', async () => {
  const db = new Level<string, string>(dir)
  const store = new VoucherStore(db)
  const r = await store.recordPayment(
    await voucher(1000n),
    { jobId: job(1), amountDue: 50n },
    {
      baseline: 600n
    }
  )
  assert.equal(r.owed, 650n)
  // the baseline is ignored once the channel is known
  const r2 = await store.recordPayment(
    await voucher(1000n),
    { jobId: job(2), amountDue: 50n },
    {
      baseline: 0n
    }
  )
  assert.equal(r2.owed, 700n)
  await store.setClaimed(channelKey(client.address, node.address, adapterId), 600n)
  assert.equal((await store.unclaimed())[0]?.amount, 700n)
  assert.equal((await store.unclaimed())[0]?.unclaimed, 100n)
  await db.close()
})

test('concurrent payments on one channel are serialised: one voucher pays for one of two jobs', async () => {
  const db = new Level<string, string>(dir)
  const store = new VoucherStore(db)
  const v = await voucher(10n)
  const results = await Promise.allSettled([
    store.recordPayment(v, { jobId: job(1), amountDue: 10n }),
    store.recordPayment(v, { jobId: job(2), amountDue: 10n })
  ])
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
  await db.close()
})

test('claimed amounts move only up; exposure per client; quarantine hides a channel', async () => {
  const db = new Level<string, string>(dir)
  const store = new VoucherStore(db)
  await store.recordPayment(await voucher(900n), { jobId: job(1), amountDue: 500n })
  await store.recordPayment(await voucher(80n, other), { jobId: job(2), amountDue: 70n })
  // a voucher alone (no job) owes nothing
  await store.recordPayment(await voucher(1000n))
  const ch = channelKey(client.address, node.address, adapterId)
  await store.setClaimed(ch, 300n)
  await store.setClaimed(ch, 200n)
  assert.equal((await store.getChannel(ch))?.claimed, '300')
  assert.equal(await store.unclaimedFromClient(client.address), 200n)
  assert.equal(await store.unclaimedFromClient(other.address), 70n)
  await store.quarantine(ch, 'InvalidSignature')
  assert.deepEqual(
    (await store.unclaimed()).map((u) => u.record.client),
    [other.address]
  )
  await db.close()
})

test('a claim that lands while jobs settle never rolls back what they owe (one lock per channel record)', async () => {
  // setClaimed runs after every mined claim, beside settles of jobs still finishing on the same
  // channel; both rewrite the channel record, so they must take the same lock or one undoes the other
  const db = new Level<string, string>(dir)
  const store = new VoucherStore(db.sublevel('chain'))
  const v = await voucher(10n ** 9n)
  const tick = async (n: number) => {
    for (let k = 0; k < n; k++) await new Promise((r) => setImmediate(r))
  }
  let expected = 0n
  for (let round = 0; round < 120; round++) {
    const jobId = `0x${(round + 1).toString(16).padStart(64, '0')}` as const
    const { channel } = await store.reserve(
      v,
      { jobId, maxAmountDue: 100n, promptTokens: 10, pricePer1kTokens: 1000n },
      { onChainClaimed: 0n, escrow: 10n ** 18n }
    )
    const d = round % 15
    await Promise.all([
      tick(round % 2 ? 0 : d).then(() => store.setClaimed(channel, expected > 0n ? expected : 1n)),
      tick(round % 2 ? d : 0).then(() => store.settle(channel, jobId, { amountDue: 50n }))
    ])
    expected += 50n
    assert.equal(BigInt((await store.getChannel(channel))!.owed ?? '0'), expected, `round ${round}`)
  }
  await db.close()
})

test.run()
