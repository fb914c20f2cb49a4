// M2 (docs/THREATS.md): one bad entry in a node's claim. Before the fix the contract reverted the
// whole claim, so whatever made one client's entry fail by the time the transaction was mined
// (here: a voucher the client signed for another node, sent as the claimer of a racing round
// would, without a fresh simulation) cost every honest client's payment in that batch. Now the
// contract settles the valid entries and reports the bad one with its index and reason.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type Address, decodeEventLog } from 'viem'
import { settlementAbi } from '../../src/chain/artifacts/index.ts'
import { compactSignature } from '../../src/chain/eip712.ts'
import { addrOf, attackStage, countTokens, job, OPEN, rawVoucher } from './fixture.ts'

const t = attackStage('m2', {
  parties: { honest1: { account: 5 }, honest2: { account: 6 }, attacker: { account: 4 } }
})

test('a claim with one bad entry pays the honest entries and names the bad one', async () => {
  const { s, honest1, honest2, attacker } = t
  const honest = [honest1, honest2]
  for (const p of honest) assert.ok((await countTokens(p.infer, addrOf(s.a), job(s, 16))).ok)
  const chain = s.chainOf(s.a)
  const node = s.operator(s.a)
  const owed = await Promise.all(
    (await chain.store.unclaimed(node)).map(async (u) => ({ voucher: u.voucher, amount: u.amount }))
  )
  assert.is(owed.length, 2)
  // the attacker's voucher names another node: the contract's signature check fails for it
  const bad = await rawVoucher(attacker, s, attacker.account.address as Address, OPEN)
  const entries = [owed[0]!, { voucher: bad, amount: OPEN / 2n }, owed[1]!].map(({ voucher: v, amount }) => ({
    client: v.client,
    adapterId: v.adapterId,
    cumulativeAmount: v.cumulativeAmount,
    amount,
    ...compactSignature(v.signature)
  }))
  // sent as mined after a race: no simulation in front of it, gas given
  const hash = await chain.client.wallet!.writeContract({
    address: chain.client.addresses.settlement,
    abi: settlementAbi,
    functionName: 'claim',
    args: [entries, []],
    gas: 2_000_000n,
    chain: null
  } as never)
  const receipt = await chain.client.publicClient.waitForTransactionReceipt({ hash })
  assert.is(receipt.status, 'success', 'the claim is not reverted by one bad entry')
  const rejected = receipt.logs.flatMap((l) => {
    try {
      const ev = decodeEventLog({ abi: settlementAbi, data: l.data, topics: l.topics })
      return ev.eventName === 'VoucherRejected' ? [ev.args] : []
    } catch {
      return []
    }
  })
  assert.equal(
    rejected.map((r) => [Number(r.index), Number(r.reason)]),
    [[1, 2]],
    'the bad entry is named: index 1, reason 2 (InvalidSignature)'
  )
  for (const e of owed)
    assert.is(
      await chain.client.claimedOf(e.voucher.client, node, s.adapterId),
      e.amount,
      'each honest entry is paid'
    )
})

test.run()
