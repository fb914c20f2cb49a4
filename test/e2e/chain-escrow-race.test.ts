// The escrow a node checks before serving must be the escrow it will claim from (docs/THREATS.md,
// "stale escrow read"): the reservation reads the client's escrow and the channel's claimed amount
// at one block, under the client's lock, so a claim mined after the quick check is seen; and a
// channel that owes more than the escrow holds is claimed up to what it holds, not refused whole.
// Real anvil, the compiled Settlement, a real LevelDB VoucherStore and the node's Claimer.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import type { Hex } from 'viem'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { Claimer } from '../../src/chain/claimer.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { signVoucher } from '../../src/chain/eip712.ts'
import { VoucherRejectedError } from '../../src/chain/errors.ts'
import { VoucherStore } from '../../src/chain/store.ts'
import { chainStateReader, channelKey } from '../../src/chain/vouchers.ts'
import { silentLogger } from '../../src/common/log.ts'

const OPEN = 10n ** 18n
const adapterId = `0x${'00'.repeat(32)}` as Hex
let chain: LocalChain
let dir: string
let db: Level<string, string>
let store: VoucherStore
let node: ChainClient
let client: ChainClient
let claimer: Claimer
let jobs = 0
/** jobs reserved and not yet settled, with what each turns out to owe */
const open: { jobId: Hex; due: bigint }[] = []

test.before(async () => {
  chain = await startLocalChain({ accounts: 3, withdrawalDelaySec: 3600 })
  node = new ChainClient({ ...chain, account: chain.accounts[1]! })
  client = new ChainClient({ ...chain, account: chain.accounts[2]! })
  dir = mkdtempSync(join(tmpdir(), 'openlora-escrow-race-'))
  db = new Level(dir)
  store = new VoucherStore(db)
  claimer = new Claimer({ chain: node, store }, { claimIntervalSec: 3600, logger: silentLogger })
})
test.after(async () => {
  await db?.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
  await chain?.stop()
})

const voucher = (cumulativeAmount: bigint) =>
  signVoucher(chain.accounts[2]!, node.domain, { node: node.address, adapterId, cumulativeAmount })
const nextJob = (maxAmountDue: bigint) => ({
  jobId: `0x${(++jobs).toString(16).padStart(32, '0')}` as Hex,
  maxAmountDue,
  promptTokens: 1,
  pricePer1kTokens: 1000n
})

async function refused(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err) => err instanceof VoucherRejectedError && err.code === code)
}

test('a claim mined after the quick check: the reservation sees the escrow it left', async () => {
  await client.deposit(10n * OPEN, { node: node.address })
  const v1 = await voucher(6n * OPEN)
  const j1 = nextJob(6n * OPEN)
  const { channel } = await store.reserve(v1, j1, chainStateReader(node, v1))
  await store.settle(channel, j1.jobId, { amountDue: 6n * OPEN })
  // what the node read before the claim: 10 OPEN in escrow, nothing claimed
  const before = await node.channelState(client.address, node.address, adapterId)
  await claimer.claimNow()
  assert.equal(await node.claimedOf(client.address, node.address, adapterId), 6n * OPEN)
  assert.equal((await node.escrowOf(client.address, node.address)).balance, 4n * OPEN)
  // a job worth up to 8 OPEN: the escrow now holds 4
  const v2 = await voucher(14n * OPEN)
  const stale = { onChainClaimed: before.claimed, escrow: before.escrow.balance }
  // (the snapshot taken before the claim would have let it through: the bug this reader fixes)
  const probe = new VoucherStore(db.sublevel('probe'))
  await probe.reserve(v2, nextJob(8n * OPEN), stale)
  await refused(store.reserve(v2, nextJob(8n * OPEN), chainStateReader(node, v2)), 'INSUFFICIENT_ESCROW')
  const j2 = nextJob(4n * OPEN)
  await store.reserve(await voucher(10n * OPEN), j2, chainStateReader(node, v2))
  open.push({ jobId: j2.jobId, due: 4n * OPEN })
  assert.equal(channelKey(client.address, node.address, adapterId), channel)
})

test('the chain is read under the client lock: a claim recorded meanwhile waits for the reservation', async () => {
  const order: string[] = []
  const v = await voucher(14n * OPEN)
  const read = chainStateReader(node, v)
  const channel = channelKey(client.address, node.address, adapterId)
  let setting: Promise<void> | undefined
  const j = nextJob(0n)
  open.push({ jobId: j.jobId, due: 0n })
  await store.reserve(v, j, async () => {
    setting = store.setClaimed(channel, 6n * OPEN).then(() => void order.push('setClaimed'))
    await new Promise((r) => setTimeout(r, 50))
    order.push('read')
    return read()
  })
  order.push('reserved')
  await setting
  assert.deepEqual(order, ['read', 'reserved', 'setClaimed'])
})

test('escrow short of what a channel owes: the claimer takes what it holds, the rest after a deposit', async () => {
  const channel = channelKey(client.address, node.address, adapterId)
  // settle the jobs reserved above: 4 OPEN more owed (10 OPEN in all, 6 paid)
  for (const j of open) await store.settle(channel, j.jobId, { amountDue: j.due })
  assert.equal(BigInt((await store.getChannel(channel))!.owed ?? '0'), 10n * OPEN)
  // the client withdraws 1 OPEN through the delay (as a node that claims late would let it)
  await client.requestWithdrawal(node.address)
  await chain.increaseTime(3601)
  await client.withdraw(node.address, OPEN)
  await client.cancelWithdrawal(node.address)
  assert.equal((await node.escrowOf(client.address, node.address)).balance, 3n * OPEN)
  await claimer.claimNow()
  assert.equal(await node.claimedOf(client.address, node.address, adapterId), 9n * OPEN, 'claimed + balance')
  assert.equal((await node.escrowOf(client.address, node.address)).balance, 0n)
  assert.equal(BigInt((await store.getChannel(channel))!.claimed), 9n * OPEN)
  await client.deposit(2n * OPEN, { node: node.address })
  await claimer.claimNow()
  assert.equal(
    await node.claimedOf(client.address, node.address, adapterId),
    10n * OPEN,
    'exactly what it owed'
  )
  assert.equal((await node.escrowOf(client.address, node.address)).balance, OPEN)
  assert.equal((await node.creditsOf(node.address)) > 0n, true)
})

test.run()
