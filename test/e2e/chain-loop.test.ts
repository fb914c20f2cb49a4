// The full loop on a real anvil: register a datanet and an adapter, deposit, three paid jobs with
// cumulative vouchers that sign a maximum (owed + the job's worst case), two claims of what the
// receipts owe (one of a single voucher, one of two), attribution by a Merkle sum tree, every
// party withdraws, and every balance is right to the wei: the payouts are the receipts' amounts
// and the client takes its unspent margin back.
import assert from 'node:assert/strict'
import { test } from 'uvu'
import { encodeAbiParameters, keccak256 } from 'viem'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { amountDue, signVoucher } from '../../src/chain/eip712.ts'
import { buildSumTree } from '../../src/chain/merkle.ts'
import { splitPayment } from '../../src/chain/shares.ts'

const OPEN = 10n ** 18n
let chain: LocalChain

test.before(async () => {
  chain = await startLocalChain({ accounts: 7, withdrawalDelaySec: 3600 })
})
test.after(async () => {
  await chain?.stop()
})

test('register, deposit, three jobs, claim, split and withdraw, to the wei', async () => {
  const [treasuryAcc, nodeAcc, ownerAcc, datanetOwnerAcc, clientAcc, alice, bob] = chain.accounts
  const as = (a: (typeof chain.accounts)[number]) => new ChainClient({ ...chain, account: a })
  const node = as(nodeAcc!)
  const owner = as(ownerAcc!)
  const datanetOwner = as(datanetOwnerAcc!)
  const client = as(clientAcc!)
  const treasury = as(treasuryAcc!)
  const supplyOf = async () => {
    let s = 0n
    for (const a of chain.accounts) s += await node.tokenBalance(a.address)
    return s + (await node.tokenBalance(chain.addresses.settlement))
  }
  const supplyBefore = await supplyOf()

  const datanetId = `0x${'d1'.repeat(32)}` as const
  const adapterId = `0x${'a1'.repeat(32)}` as const
  await datanetOwner.createDatanet(datanetId, `0x${'11'.repeat(32)}`)
  await datanetOwner.appendDatanetVersion(datanetId, `0x${'22'.repeat(32)}`)
  const price = 2_000_000_000_000_000n // 0.002 OPEN per 1k tokens
  await owner.registerAdapter({
    adapterId,
    modelHash: `0x${'33'.repeat(32)}`,
    feePer1kTokens: price,
    datanets: [{ id: datanetId, weightBps: 10_000 }]
  })
  assert.equal(await node.adapterOwner(adapterId), ownerAcc!.address)

  const deposit = 5n * OPEN
  const clientTokensBefore = await client.tokenBalance(clientAcc!.address)
  await client.deposit(deposit, { node: nodeAcc!.address })
  assert.equal((await client.escrowOf(clientAcc!.address, nodeAcc!.address)).balance, deposit)
  assert.equal(await client.tokenBalance(clientAcc!.address), clientTokensBefore - deposit)

  // three jobs of different sizes; each voucher signs what is owed so far plus the job's worst
  // case (maxNewTokens 4096), and `owed` (the receipts' running total) is what the node claims
  const jobs = [
    [120, 300],
    [7, 1],
    [2048, 999]
  ] as const
  const vouchers = []
  const owed: bigint[] = []
  let cumulative = 0n
  for (const [p, o] of jobs) {
    vouchers.push(
      await signVoucher(clientAcc!, node.domain, {
        node: nodeAcc!.address,
        adapterId,
        cumulativeAmount: cumulative + amountDue(p, 4096, price)
      })
    )
    cumulative += amountDue(p, o, price)
    owed.push(cumulative)
  }
  const signedMaximum = vouchers[2]!.cumulativeAmount
  assert.ok(signedMaximum > cumulative)
  const increases = [owed[0]!, owed[1]! - owed[0]!, owed[2]! - owed[1]!]
  const splits = increases.map(splitPayment)
  const sum = (k: keyof (typeof splits)[number], from = 0, to = 3) =>
    splits.slice(from, to).reduce((s, x) => s + x[k], 0n)

  // claim 1: the first voucher, attributed 60/40 to alice and bob in the datanet
  const pool1 = sum('pool', 0, 1)
  const tree1 = buildSumTree([
    { account: alice!.address, amount: (pool1 * 6n) / 10n },
    { account: bob!.address, amount: pool1 - (pool1 * 6n) / 10n }
  ])
  const c1 = await node.claim(
    [{ voucher: vouchers[0]!, amount: owed[0]! }],
    [{ datanetId, root: tree1.root, total: tree1.total }]
  )
  assert.equal(c1.total, increases[0])
  assert.deepEqual(c1.poolIds, [0n])

  // claim 2: vouchers two and three in one batch, all of the pool to alice
  const pool2 = sum('pool', 1, 3)
  const tree2 = buildSumTree([{ account: alice!.address, amount: pool2 }])
  const c2 = await node.claim(
    [
      { voucher: vouchers[1]!, amount: owed[1]! },
      { voucher: vouchers[2]!, amount: owed[2]! }
    ],
    [{ datanetId, root: tree2.root, total: tree2.total }]
  )
  assert.equal(c2.total, increases[1]! + increases[2]!)
  assert.deepEqual(c2.poolIds, [1n])

  assert.equal(await node.claimedOf(clientAcc!.address, nodeAcc!.address, adapterId), cumulative)
  assert.equal((await node.escrowOf(clientAcc!.address, nodeAcc!.address)).balance, deposit - cumulative)
  assert.equal(await node.creditsOf(nodeAcc!.address), sum('node'))
  assert.equal(await node.creditsOf(ownerAcc!.address), sum('owner'))
  assert.equal(await node.creditsOf(treasuryAcc!.address), sum('protocol'))
  assert.equal(sum('node') + sum('owner') + sum('protocol') + sum('pool'), cumulative)

  // everybody withdraws
  const before = new Map<string, bigint>()
  for (const a of [nodeAcc!, ownerAcc!, treasuryAcc!, alice!, bob!])
    before.set(a.address, await node.tokenBalance(a.address))
  await node.withdrawCredits()
  await owner.withdrawCredits()
  await treasury.withdrawCredits()
  for (const [poolId, tree] of [
    [0n, tree1],
    [1n, tree2]
  ] as const) {
    for (const [i, leaf] of tree.leaves.entries()) {
      // anyone may submit the proof; the tokens go to the leaf's account
      await datanetOwner.withdrawContribution({
        poolId,
        index: i,
        account: leaf.account,
        amount: leaf.amount,
        proof: tree.proof(i)
      })
      assert.equal(await node.isContributionWithdrawn(poolId, i), true)
    }
  }
  const gained = async (a: { address: `0x${string}` }) =>
    (await node.tokenBalance(a.address)) - before.get(a.address)!
  assert.equal(await gained(nodeAcc!), sum('node'))
  assert.equal(await gained(ownerAcc!), sum('owner'))
  assert.equal(await gained(treasuryAcc!), sum('protocol'))
  assert.equal(await gained(alice!), (pool1 * 6n) / 10n + pool2)
  assert.equal(await gained(bob!), pool1 - (pool1 * 6n) / 10n)
  assert.equal(
    await node.poolCommitment(0n),
    keccak256(encodeAbiParameters([{ type: 'bytes32' }, { type: 'uint256' }], [tree1.root, pool1]))
  )

  // the client takes the rest of the escrow back after the delay: the margin it signed for and
  // never spent (signedMaximum − owed) included
  assert.equal(
    (await client.escrowOf(clientAcc!.address, nodeAcc!.address)).balance - (deposit - signedMaximum),
    signedMaximum - cumulative
  )
  await client.requestWithdrawal(nodeAcc!.address)
  await chain.increaseTime(3601)
  await client.withdraw(nodeAcc!.address, deposit - cumulative)
  assert.equal(await client.tokenBalance(clientAcc!.address), clientTokensBefore - cumulative)
  assert.equal(await node.tokenBalance(chain.addresses.settlement), 0n)
  assert.equal(await supplyOf(), supplyBefore)
})

test.run()
