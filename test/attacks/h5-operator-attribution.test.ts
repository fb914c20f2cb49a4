// H5 (docs/THREATS.md): the contributor pool of a claim went to whatever attributions the claiming
// node sent, so an operator could create a datanet of its own and take the pool. Now a claim may
// fund only datanets that the paid adapters' on-chain registrations declare, up to their declared
// weight: the operator's own datanet gets nothing, and the honest claim still pays.
// Within a declared datanet, the funded tree is bound to the receipts it was computed from (their
// EIP-712 digests, what the client verified) and the published pool carries them: an operator
// that shifts shares between contributors is caught by anyone re-deriving the pool, and one that
// re-signs receipts with other shares is caught by the client whose receipt is missing.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type Address, type Hex, keccak256, toBytes, toHex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { signVoucher } from '../../src/chain/eip712.ts'
import { ChainCallError, revertArgs } from '../../src/chain/errors.ts'
import { buildSumTree } from '../../src/chain/merkle.ts'
import { poolBinding } from '../../src/chain/pool-attribution.ts'
import { publishedPools } from '../../src/chain/published-pools.ts'
import { splitPayment } from '../../src/chain/shares.ts'
import { cidDigest, cidForBytes } from '../../src/crypto/cid.ts'
import { checkPoolBinding, poolsBoundTo } from '../../src/protocols/infer/pool-binding.ts'
import { amountDueFor, receiptDigest, signReceipt, verifyReceipt } from '../../src/protocols/infer/receipt.ts'
import { runCli } from '../helpers/cli.ts'
import { addrOf, attackStage, countTokens, job, PRICE } from './fixture.ts'

const t = attackStage('h5', { parties: { client: { account: 5 } } })

test('an operator cannot send the contributor pool to a datanet of its own', async () => {
  const { s, client } = t
  assert.ok((await countTokens(client.infer, addrOf(s.a), job(s, 32))).ok)
  const chain = s.chainOf(s.a)
  const operator = chain.client
  const [owed] = await chain.store.unclaimed(s.operator(s.a))
  assert.ok(owed, 'the job is owed')
  const pool = (owed.amount * 1000n) / 10_000n
  // the operator's own datanet, its own address the only contributor
  const evil = keccak256(toHex('the operator’s own datanet')) as Hex
  await operator.createDatanet(evil, `0x${'00'.repeat(32)}`)
  const tree = buildSumTree([{ account: operator.address, amount: pool }])
  const before = await operator.tokenBalance(operator.address)
  // refused for exactly this reason (not any revert: a broken claim would pass a bare try/catch)
  let refusal: unknown
  try {
    const res = await operator.claim(
      [{ voucher: owed.voucher, amount: owed.amount }],
      [{ datanetId: evil, root: tree.root, total: tree.total }]
    )
    await operator.withdrawContribution({
      poolId: res.poolIds[0]!,
      index: 0,
      account: operator.address,
      amount: pool,
      proof: tree.proof(0)
    })
  } catch (err) {
    refusal = err
  }
  assert.instance(refusal, ChainCallError, 'the claim is refused')
  assert.is((refusal as ChainCallError).revert, 'BadAttribution')
  assert.equal(revertArgs((refusal as ChainCallError).cause)?.[1], 'above the share its adapters declare')
  const taken = (await operator.tokenBalance(operator.address)) - before
  assert.ok(taken <= 0n, `the operator took ${taken} wei of the contributor pool (its gas aside)`)
  // the honest claim goes through: the job is paid, the pool to the protocol (nothing declared)
  await chain.claimer.claimNow()
  assert.is(await operator.claimedOf(client.account.address, s.operator(s.a), s.adapterId), owed.amount)
})

/** A paid job at node A for `adapter`, its receipt signed with the node's own keys. */
async function paidJob(n: number, adapter: string, credits: { address: Address; bp: number }[]) {
  const { s, client } = t
  const chain = s.chainOf(s.a)
  const operator = s.operator(s.a)
  const adapterId = toHex(cidDigest(adapter)) as Hex
  const due = BigInt(amountDueFor(500, 500, PRICE.toString()))
  const v = await signVoucher(client.account, chain.domain, {
    node: operator,
    adapterId,
    cumulativeAmount: due * BigInt(n)
  })
  const jobId = `0x${n.toString(16).padStart(32, '0')}` as Hex
  const job = await chain.openJob(v, {
    jobId,
    adapterId,
    maxAmountDue: due,
    promptTokens: 500,
    pricePer1kTokens: PRICE
  })
  const receipt = await signAs(jobId, adapter, credits)
  await job.finish({
    amountDue: due,
    attribution: {
      datanets: receipt.body.attribution.datanets,
      contributors: receipt.body.attribution.contributors
    },
    receipt,
    digest: receiptDigest(receipt.body, receipt.eip712)
  })
  return { v, due, receipt, adapterId }
}

/** A receipt for job `jobId` crediting `credits` in the shared datanet, signed by node A's keys. */
function signAs(jobId: Hex, adapter: string, credits: { address: Address; bp: number }[]) {
  const { s } = t
  const chain = s.chainOf(s.a)
  const now = Date.now()
  return signReceipt(
    {
      v: 1,
      jobId,
      peerId: s.a.peerId,
      operator: s.operator(s.a),
      modelId: s.model,
      modelHash: `0x${'01'.repeat(32)}`,
      adapter,
      inputHash: `0x${'02'.repeat(32)}`,
      outputHash: `0x${'03'.repeat(32)}`,
      promptTokens: 500,
      outputTokens: 500,
      pricePer1kTokens: PRICE.toString(),
      amountDue: amountDueFor(500, 500, PRICE.toString()),
      attribution: {
        method: 'spans',
        datanets: [{ id: shared, bp: 10_000 }],
        contributors: credits,
        proofHash: `0x${'04'.repeat(32)}`
      },
      voucher: null,
      startedAt: now,
      finishedAt: now
    },
    {
      peerId: s.a.peerId,
      signPeer: (d) => s.a.identity.privateKey.sign(d),
      operator: s.a.identity.operator.account,
      domain: { chainId: chain.domain.chainId, verifyingContract: chain.domain.settlement }
    }
  )
}

const shared = keccak256(toHex('a datanet with two honest contributors')) as Hex

test('an operator cannot shift shares between the contributors of a declared datanet unseen', async () => {
  const { s, client } = t
  const chain = s.chainOf(s.a)
  const operator = chain.client
  const bob = privateKeyToAccount(generatePrivateKey()).address
  const alice = privateKeyToAccount(generatePrivateKey()).address // say, the operator's own
  const honest = [
    { address: bob, bp: 7500 },
    { address: alice, bp: 2500 }
  ]
  // an adapter whose registration declares the datanet (all its contributor share)
  const adapter = cidForBytes(toBytes('h5: an adapter trained on the shared datanet'))
  await s.as(2).createDatanet(shared, `0x${'00'.repeat(32)}`)
  await s.as(2).registerAdapter({
    adapterId: toHex(cidDigest(adapter)) as Hex,
    modelHash: `0x${'01'.repeat(32)}`,
    feePer1kTokens: PRICE,
    datanets: [{ id: shared, weightBps: 10_000 }]
  })

  // the honest claim: the published pool re-derives from the receipts it is bound to
  const first = await paidJob(1, adapter, honest)
  const [claim] = await chain.claimer.claimNow()
  assert.is(claim?.poolIds.length, 1)
  let file = await publishedPools(chain.store, chain.domain)
  const pool = file.pools.find((p) => p.poolId === claim!.poolIds[0]!.toString())!
  const ok = await checkPoolBinding(pool, { operator: s.operator(s.a) })
  assert.ok(ok.ok, JSON.stringify(ok))
  assert.equal(poolsBoundTo(file, receiptDigest(first.receipt.body, first.receipt.eip712)), [pool.poolId])

  // attack 1: the operator funds a tree that gives Bob's share to Alice, bound to the real receipt
  const second = await paidJob(2, adapter, honest)
  const budget = splitPayment(second.due).pool
  const digest = receiptDigest(second.receipt.body, second.receipt.eip712)
  const runs = [{ adapterId: second.adapterId, budget, digests: [digest] }]
  const binding = poolBinding(runs)
  const shifted = buildSumTree([{ account: alice, amount: budget }], binding)
  // the contract cannot tell (the total is within the datanet's cap): it funds the pool
  const res = await operator.claim(
    [{ voucher: second.v, amount: second.due * 2n }],
    [{ datanetId: shared, root: shifted.root, total: shifted.total }]
  )
  assert.is(res.poolIds.length, 1)
  const shiftedPool = {
    poolId: res.poolIds[0]!.toString(),
    datanetId: shared,
    root: shifted.root,
    total: shifted.total.toString(),
    leaves: [{ account: alice, amount: budget.toString() }],
    binding,
    runs: [
      {
        adapterId: second.adapterId,
        budget: budget.toString(),
        receipts: [{ digest, receipt: second.receipt }]
      }
    ]
  }
  const caught = await checkPoolBinding(shiftedPool, { operator: s.operator(s.a) })
  assert.not.ok(caught.ok, 'a tree that does not follow from its receipts is caught')
  assert.match((caught as { reason: string }).reason, /shares were shifted/)

  // attack 2: the operator re-signs the receipt with Alice alone and binds the tree to that
  const third = await paidJob(3, adapter, honest)
  const forged = await signAs(third.receipt.body.jobId, adapter, [{ address: alice, bp: 10_000 }])
  const forgedDigest = receiptDigest(forged.body, forged.eip712)
  const budget3 = splitPayment(third.due).pool
  const binding3 = poolBinding([{ adapterId: third.adapterId, budget: budget3, digests: [forgedDigest] }])
  const tree3 = buildSumTree([{ account: alice, amount: budget3 }], binding3)
  const res3 = await operator.claim(
    [{ voucher: third.v, amount: third.due * 3n }],
    [{ datanetId: shared, root: tree3.root, total: tree3.total }]
  )
  file = {
    ...file,
    pools: [
      ...file.pools,
      shiftedPool,
      {
        poolId: res3.poolIds[0]!.toString(),
        datanetId: shared,
        root: tree3.root,
        total: tree3.total.toString(),
        leaves: [{ account: alice, amount: budget3.toString() }],
        binding: binding3,
        runs: [
          {
            adapterId: third.adapterId,
            budget: budget3.toString(),
            receipts: [{ digest: forgedDigest, receipt: forged }]
          }
        ]
      }
    ]
  }
  // consistent in itself, but the client that verified the real receipt finds it in no pool,
  // while the claim paid its channel; and it holds two receipts of one job signed by the operator
  assert.equal(poolsBoundTo(file, receiptDigest(third.receipt.body, third.receipt.eip712)), [])
  assert.is(
    await operator.claimedOf(client.account.address, s.operator(s.a), third.adapterId),
    third.due * 3n
  )
  assert.is(forged.body.jobId, third.receipt.body.jobId)
  assert.ok(
    (await verifyReceipt(forged)).ok && (await verifyReceipt(third.receipt)).ok,
    'both carry the operator’s signature'
  )

  // each client checks its own receipt with the CLI, against the pools the node published
  const poolsFile = join(s.root, 'h5-pools.json')
  await writeFile(poolsFile, JSON.stringify(file))
  const check = async (r: unknown) => {
    const f = join(s.root, 'h5-receipt.json')
    await writeFile(f, JSON.stringify(r))
    const out = await runCli('rewards', 'check-receipt', f, '--pools', poolsFile, '--json')
    return { code: out.code, ...JSON.parse(out.out) }
  }
  const honestCheck = await check(first.receipt)
  assert.is(honestCheck.code, 0)
  assert.equal(honestCheck.pools, [{ poolId: pool.poolId, ok: true }])
  const shiftedCheck = await check(second.receipt)
  assert.is(shiftedCheck.code, 1)
  assert.match(shiftedCheck.pools[0].reason, /shares were shifted/)
  const missing = await check(third.receipt)
  assert.is(missing.code, 1)
  assert.equal(missing.pools, [])
})

test.run()
