// H5 (docs/THREATS.md): the contributor pool of a claim went to whatever attributions the claiming
// node sent, so an operator could create a datanet of its own and take the pool. Now a claim may
// fund only datanets that the paid adapters' on-chain registrations declare, up to their declared
// weight: the operator's own datanet gets nothing, and the honest claim still pays.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type Hex, keccak256, toHex } from 'viem'
import { ChainCallError, revertArgs } from '../../src/chain/errors.ts'
import { buildSumTree } from '../../src/chain/merkle.ts'
import { addrOf, countTokens, fund, job, OPEN, type Party, party, type Stage, stage } from './fixture.ts'

let s: Stage
let client: Party

test.before(async () => {
  s = await stage({ name: 'h5' })
  client = await party(s, 5)
  await fund(client.chain, s.operator(s.a), 10n * OPEN)
})
test.after(async () => {
  await client?.stop()
  await s?.stop()
})

test('an operator cannot send the contributor pool to a datanet of its own', async () => {
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

test.run()
