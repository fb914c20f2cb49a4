// Every refusal the issue lists, on a real anvil: the contract refuses forged vouchers, vouchers
// for another chain id or contract, decreasing or replayed amounts, amounts above the escrow,
// claims by a node that is not the voucher's node, claims above the voucher's signed maximum and
// contributor proofs that do not match; the node's own pre-serving check (checkVoucher) refuses
// the same before any work is done. A client's margin that no claim took stays withdrawable.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { signVoucher } from '../../src/chain/eip712.ts'
import { VoucherRejectedError } from '../../src/chain/errors.ts'
import { buildSumTree } from '../../src/chain/merkle.ts'
import { VoucherStore } from '../../src/chain/store.ts'
import { checkVoucher } from '../../src/chain/vouchers.ts'
import { refusesEntries, reverts } from '../helpers/chain.ts'

const OPEN = 10n ** 18n
const adapterId = `0x${'a7'.repeat(32)}` as const
const datanetId = `0x${'d7'.repeat(32)}` as const
let chain: LocalChain
let dir: string
let db: Level<string, string>
let store: VoucherStore
let c: Record<'node' | 'other' | 'client' | 'owner' | 'poor', ChainClient>

async function refused(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p
  } catch (err) {
    assert.ok(
      err instanceof VoucherRejectedError,
      `expected VoucherRejectedError, got ${(err as Error).name}`
    )
    assert.equal(err.code, code, err.message)
    return
  }
  assert.fail(`expected refusal ${code}`)
}

test.before(async () => {
  chain = await startLocalChain({ accounts: 6, withdrawalDelaySec: 3600 })
  const [, node, other, client, owner, poor] = chain.accounts
  const mk = (a: (typeof chain.accounts)[number]) => new ChainClient({ ...chain, account: a })
  c = { node: mk(node!), other: mk(other!), client: mk(client!), owner: mk(owner!), poor: mk(poor!) }
  await c.owner.createDatanet(datanetId, `0x${'00'.repeat(32)}`)
  await c.owner.registerAdapter({
    adapterId,
    modelHash: `0x${'01'.repeat(32)}`,
    feePer1kTokens: 1000n,
    datanets: [{ id: datanetId, weightBps: 10_000 }]
  })
  await c.client.deposit(10n * OPEN, { node: c.node.address })
  dir = mkdtempSync(join(tmpdir(), 'openlora-chain-rej-'))
  db = new Level(dir)
  store = new VoucherStore(db)
})
test.after(async () => {
  await db?.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
  await chain?.stop()
})

const voucherFor = (
  amount: bigint,
  opts: { node?: `0x${string}`; chainId?: number; settlement?: `0x${string}` } = {}
) =>
  signVoucher(
    chain.accounts[3]!,
    { chainId: opts.chainId ?? chain.chainId, settlement: opts.settlement ?? chain.addresses.settlement },
    { node: opts.node ?? c.node.address, adapterId, cumulativeAmount: amount }
  )

test('forged voucher: signed by someone else in the client’s name', async () => {
  const v = await signVoucher(chain.accounts[5]!, c.node.domain, {
    node: c.node.address,
    adapterId,
    cumulativeAmount: OPEN
  })
  const forged = { ...v, client: c.client.address }
  await refusesEntries(c.node.claim([forged]), ['InvalidSignature'])
  await refused(
    checkVoucher(c.node, store, { voucher: forged, node: c.node.address, adapterId, maxAmountDue: 1n }),
    'BAD_SIGNATURE'
  )
})

test('voucher signed for another chain id or another contract', async () => {
  const otherChain = await voucherFor(OPEN, { chainId: 161201 })
  await refusesEntries(c.node.claim([otherChain]), ['InvalidSignature'])
  await refused(
    checkVoucher(c.node, store, { voucher: otherChain, node: c.node.address, adapterId, maxAmountDue: 1n }),
    'BAD_SIGNATURE'
  )
  const otherContract = await voucherFor(OPEN, { settlement: chain.addresses.adapterRegistry })
  await refusesEntries(c.node.claim([otherContract]), ['InvalidSignature'])
  await refused(
    checkVoucher(c.node, store, {
      voucher: otherContract,
      node: c.node.address,
      adapterId,
      maxAmountDue: 1n
    }),
    'BAD_SIGNATURE'
  )
})

test('claim by a node that is not the voucher’s node', async () => {
  const v = await voucherFor(OPEN)
  await refusesEntries(c.other.claim([v]), ['InvalidSignature'])
  await refused(
    checkVoucher(c.other, store, { voucher: v, node: c.other.address, adapterId, maxAmountDue: 1n }),
    'WRONG_CHANNEL'
  )
})

test('replayed and decreasing cumulative amounts', async () => {
  const v2 = await voucherFor(2n * OPEN)
  await c.node.claim([v2])
  await refusesEntries(c.node.claim([v2]), ['NotIncreasing'])
  const v1 = await voucherFor(OPEN)
  await refusesEntries(c.node.claim([v1]), ['NotIncreasing'])
  // within one batch, the second copy is a replay too (simulated: the first copy would pay)
  const v3 = await voucherFor(3n * OPEN)
  await refusesEntries(c.node.simulateClaim([v3, v3]), [undefined, 'NotIncreasing'])
  await refused(
    checkVoucher(c.node, store, { voucher: v1, node: c.node.address, adapterId, maxAmountDue: 1n }),
    'NOT_INCREASING'
  )
  // the node's own store refuses a voucher below the one it holds
  await store.recordPayment(v3, { jobId: `0x${'03'.repeat(16)}`, amountDue: 3n * OPEN })
  await refused(store.recordPayment(await voucherFor(3n * OPEN - 1n)), 'NOT_INCREASING')
  // replaying the 3 OPEN voucher for a new job pays nothing: everything it covers is owed already
  await refused(
    checkVoucher(c.node, store, { voucher: v3, node: c.node.address, adapterId, maxAmountDue: 1n }),
    'UNDERPAID'
  )
  await refused(store.recordPayment(v3, { jobId: `0x${'04'.repeat(16)}`, amountDue: 1n }), 'UNDERPAID')
  await refused(
    checkVoucher(c.node, store, {
      voucher: await voucherFor(3n * OPEN + 5n),
      node: c.node.address,
      adapterId,
      maxAmountDue: 6n
    }),
    'UNDERPAID'
  )
})

test('voucher above the client’s escrow balance', async () => {
  const { balance } = await c.node.escrowOf(c.client.address, c.node.address)
  const claimed = await c.node.claimedOf(c.client.address, c.node.address, adapterId)
  const tooMuch = await voucherFor(claimed + balance + 1n)
  await refusesEntries(c.node.claim([tooMuch]), ['InsufficientEscrow'])
  // the stored receipts owe 3 OPEN, 2 OPEN of it claimed: 1 OPEN of unclaimed exposure, which
  // the node counts against the escrow together with the job's worst case
  await refused(
    checkVoucher(c.node, store, {
      voucher: await voucherFor(3n * OPEN + balance - OPEN + 1n),
      node: c.node.address,
      adapterId,
      maxAmountDue: balance - OPEN + 1n
    }),
    'INSUFFICIENT_ESCROW'
  )
  const ok = await checkVoucher(c.node, store, {
    voucher: await voucherFor(3n * OPEN + balance - OPEN),
    node: c.node.address,
    adapterId,
    maxAmountDue: balance - OPEN
  })
  assert.equal(ok.previous, 3n * OPEN)
  // a signed maximum above the escrow is no exposure by itself: the node claims only what is owed
  const generous = await checkVoucher(c.node, store, {
    voucher: await voucherFor(100n * OPEN),
    node: c.node.address,
    adapterId,
    maxAmountDue: 1n
  })
  assert.equal(generous.owed, 3n * OPEN)
})

test('a claim above the signed maximum is refused; the margin nobody claimed stays withdrawable', async () => {
  const poor = chain.accounts[5]!
  await c.poor.deposit(2n * OPEN, { node: c.node.address })
  // the client signs up to 1.5 OPEN; its receipts owe 1 OPEN
  const v = await signVoucher(poor, c.node.domain, {
    node: c.node.address,
    adapterId,
    cumulativeAmount: (3n * OPEN) / 2n
  })
  await refusesEntries(c.node.claim([{ voucher: v, amount: (3n * OPEN) / 2n + 1n }]), ['AboveSignedMaximum'])
  // with a second, good entry the good one would be paid and the bad one named by its index
  await refusesEntries(
    c.node.simulateClaim([
      { voucher: await voucherFor(4n * OPEN), amount: 4n * OPEN },
      { voucher: v, amount: 2n * OPEN }
    ]),
    [undefined, 'AboveSignedMaximum']
  )
  await c.node.claim([{ voucher: v, amount: OPEN }])
  assert.equal(await c.node.claimedOf(poor.address, c.node.address, adapterId), OPEN)
  assert.equal((await c.node.escrowOf(poor.address, c.node.address)).balance, OPEN)
  // the same voucher cannot take its margin later either: amount must grow past 1 OPEN and stay
  // within 1.5 OPEN, so the most it could still pay is 0.5 OPEN, and only with a receipt behind it
  await refusesEntries(c.node.claim([{ voucher: v, amount: OPEN }]), ['NotIncreasing'])
  // the client withdraws everything left: its unspent margin and the rest of its deposit
  await c.poor.requestWithdrawal(c.node.address)
  await chain.increaseTime(3601)
  const before = await c.poor.tokenBalance(poor.address)
  await c.poor.withdraw(c.node.address, OPEN)
  assert.equal((await c.poor.tokenBalance(poor.address)) - before, OPEN)
  assert.equal((await c.poor.escrowOf(poor.address, c.node.address)).balance, 0n)
})

test('a pending withdrawal makes the node refuse new vouchers; the client cannot withdraw before the delay', async () => {
  await c.client.requestWithdrawal(c.node.address)
  await refused(
    checkVoucher(c.node, store, {
      voucher: await voucherFor(4n * OPEN),
      node: c.node.address,
      adapterId,
      maxAmountDue: 1n
    }),
    'WITHDRAWAL_PENDING'
  )
  await reverts(c.client.withdraw(c.node.address, 1n), 'WithdrawalLocked')
  await c.client.cancelWithdrawal(c.node.address)
})

test('unregistered adapter: the claim names it', async () => {
  const v = await signVoucher(chain.accounts[3]!, c.node.domain, {
    node: c.node.address,
    adapterId: `0x${'ee'.repeat(32)}`,
    cumulativeAmount: 1n
  })
  await refusesEntries(c.node.claim([v]), ['UnknownAdapter'])
})

test('contributor proofs that do not match are refused; a matching one pays once', async () => {
  const v = await voucherFor(4n * OPEN)
  const claimed = await c.node.claimedOf(c.client.address, c.node.address, adapterId)
  const pool = ((4n * OPEN - claimed) * 1000n) / 10_000n
  const [, , , , alice, bob] = chain.accounts
  const tree = buildSumTree([
    { account: alice!.address, amount: pool - 7n },
    { account: bob!.address, amount: 7n }
  ])
  // an attribution above the pool (above the share the adapter declares for the datanet) is refused
  await reverts(c.node.claim([v], [{ datanetId, root: tree.root, total: pool + 1n }]), 'BadAttribution')
  const res = await c.node.claim([v], [{ datanetId, root: tree.root, total: tree.total }])
  const poolId = res.poolIds[0]!
  const i = tree.indexOf(bob!.address)
  const leaf = tree.leaves[i]!
  const good = { poolId, index: i, account: leaf.account, amount: leaf.amount, proof: tree.proof(i) }
  await reverts(c.node.withdrawContribution({ ...good, amount: leaf.amount + 1n }), 'InvalidProof')
  await reverts(c.node.withdrawContribution({ ...good, account: alice!.address }), 'InvalidProof')
  await reverts(c.node.withdrawContribution({ ...good, index: i ^ 1 }), 'InvalidProof')
  await reverts(c.node.withdrawContribution({ ...good, index: i + 2 }), 'InvalidProof')
  await reverts(
    c.node.withdrawContribution({ ...good, proof: [{ ...good.proof[0]!, sum: good.proof[0]!.sum + 1n }] }),
    'InvalidProof'
  )
  await reverts(c.node.withdrawContribution({ ...good, poolId: poolId + 1n }), 'UnknownPool')
  const before = await c.node.tokenBalance(bob!.address)
  await c.node.withdrawContribution(good)
  assert.equal(await c.node.tokenBalance(bob!.address), before + 7n)
  await reverts(c.node.withdrawContribution(good), 'AlreadyWithdrawn')
})

test.run()
