// The swarm's reconciliation can fail: on a real anvil (a child process) with the swarm's own
// chain set-up, a node claims what two receipts owe; reconcile() agrees to the wei, and then
// reports each way the books can be wrong — an acknowledged receipt the node never stored, a
// payment stored for a job the client never sent there, a channel paid other than its receipts,
// a party's credits moved.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Hex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import type { LocalChain } from '../../src/chain/anvil.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { signVoucher } from '../../src/chain/eip712.ts'
import { channelKey } from '../../src/chain/vouchers.ts'
import { createLogger } from '../../src/common/log.ts'
import { cidForBytes } from '../../src/crypto/cid.ts'
import { type SwarmChain, setUpSwarmChain, startAnvil } from '../../src/node/swarm/chain.ts'
import type { ChannelLedger } from '../../src/node/swarm/driver.ts'
import { reconcile } from '../../src/node/swarm/reconcile.ts'
import type { StoredChannel } from '../../src/node/swarm/settle.ts'
import { adapterIdOf } from '../../src/protocols/infer/receipt.ts'

let local: LocalChain
let chain: SwarmChain
const operator = privateKeyToAccount(generatePrivateKey())
const cid = cidForBytes(new TextEncoder().encode('a demo adapter'))
const adapterId = adapterIdOf(cid)
const JOB1 = `0x${'11'.repeat(16)}` as Hex
const JOB2 = `0x${'22'.repeat(16)}` as Hex
const JOB3 = `0x${'33'.repeat(16)}` as Hex

test.before(async () => {
  local = await startAnvil(createLogger('test', { level: 'silent' }))
  chain = await setUpSwarmChain(local, {
    adapterCids: [cid],
    modelHash: `0x${'ab'.repeat(32)}`,
    datanetId: `0x${'d1'.repeat(32)}`,
    datanetRoot: `0x${'e1'.repeat(32)}`,
    feePer1kTokens: 1000n,
    operators: [operator.address],
    deposit: 10n ** 18n
  })
  // two jobs of 300 and 200 wei on one channel, paid with a voucher signed for at most 1,000
  const client = local.accounts[1]!
  const voucher = await signVoucher(client, chain.client.domain, {
    node: operator.address,
    adapterId,
    cumulativeAmount: 1000n
  })
  await new ChainClient({ ...chain.endpoint, account: operator }).claim([{ voucher, amount: 500n }])
})
test.after(async () => {
  await local?.stop()
})

function books(mutate: { stored?: (s: StoredChannel) => void; ledger?: (c: ChannelLedger) => void } = {}) {
  const client = local.accounts[1]!.address
  const ledger: ChannelLedger = {
    client,
    node: operator.address,
    adapterId,
    acknowledged: 1000n,
    unknown: [],
    accepted: new Map([
      [JOB1, 300n],
      [JOB2, 200n]
    ]),
    unknownJobs: [],
    receipts: 2,
    amountDue: 500n
  }
  const stored: StoredChannel = {
    channel: channelKey(client, operator.address, adapterId),
    latest: 1000n,
    receipts: new Map([
      [JOB1, 300n],
      [JOB2, 200n]
    ])
  }
  mutate.stored?.(stored)
  mutate.ledger?.(ledger)
  return reconcile({
    chain: chain.client,
    ledger: [ledger],
    operators: [operator.address],
    ownerOf: new Map([[adapterId, chain.ownerOf.get(cid)!]]),
    treasury: chain.treasury,
    contributors: [],
    client,
    deposit: chain.deposit,
    withdrawnToContributors: 0n,
    stored: new Map([[stored.channel, stored]])
  })
}

test('the books of a claim that paid exactly its receipts reconcile to the wei', async () => {
  const r = await books()
  assert.equal(r.problems, [])
  assert.ok(r.ok)
  assert.is(r.claimMode, 'owed')
  assert.is(r.claimedTotal, '500')
  assert.is(r.storedDueTotal, '500')
  assert.is(r.vouchersClaimed, 1)
  const op = r.parties.find((p) => p.role === 'operator')!
  assert.is(op.credits, '350') // 70 % of 500
  assert.is(r.parties.find((p) => p.role === 'client')!.credits, (chain.deposit - 500n).toString())
})

test('an acknowledged receipt the node did not store is reported as lost', async () => {
  const r = await books({ stored: (s) => s.receipts.delete(JOB2) })
  assert.not.ok(r.ok)
  assert.ok(
    r.problems.some((p) => p.includes(`no payment for acknowledged job ${JOB2}`)),
    r.problems.join('\n')
  )
  assert.ok(
    r.problems.some((p) => p.includes('paid 500 on-chain, expected 300')),
    r.problems.join('\n')
  )
})

test('a stored payment is accepted only for an attempt whose outcome the client could not know', async () => {
  const extra = (s: StoredChannel) => void s.receipts.set(JOB3, 100n)
  const never = await books({ stored: extra })
  assert.ok(never.problems.some((p) => p.includes(`job ${JOB3} the client never sent there`)))
  const unknown = await books({ stored: extra, ledger: (c) => void c.unknownJobs.push(JOB3) })
  assert.is(unknown.paidWithoutReceipt, '100')
  // …and then the chain must have paid it too: 500 paid, 600 stored
  assert.equal(unknown.problems, [
    'channel node ' +
      operator.address +
      ` adapter ${adapterId.slice(0, 10)}…: paid 500 on-chain, expected 600 (the node's stored receipts)`
  ])
})

test('a receipt amount that differs from the stored one, and moved credits, are reported', async () => {
  const r = await books({ ledger: (c) => void c.accepted.set(JOB1, 301n) })
  assert.ok(r.problems.some((p) => p.includes(`job ${JOB1} stored with 300, receipt says 301`)))
  await new ChainClient({ ...chain.endpoint, account: operator }).withdrawCredits()
  const after = await books()
  assert.ok(
    after.problems.some((p) => p.startsWith(`operator ${operator.address}: credits 0, expected 350`)),
    after.problems.join('\n')
  )
})

test.run()
