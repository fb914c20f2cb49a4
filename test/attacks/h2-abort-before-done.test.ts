// H2 (docs/THREATS.md): a paying client closes the stream after half its tokens. Before the fix
// nothing was recorded before `done`, so the node was paid 0 for what it delivered. Now the
// tokens are recorded as they are sent: an abort still leaves a claim for every token delivered.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { channelKey } from '../../src/chain/vouchers.ts'
import { addrOf, attackStage, claimAndRead, countTokens, job, until, worth } from './fixture.ts'

const t = attackStage('h2', { parties: { attacker: { account: 4 } } })

test('three paid jobs cancelled at half their tokens: the node is paid exactly what it delivered', async () => {
  const { s, attacker } = t
  const MAX = 64
  const received: number[] = []
  for (let i = 0; i < 3; i++) {
    // the payer signs a proper voucher; the attacker just hangs up half way
    const r = await countTokens(attacker.infer, addrOf(s.a), job(s, MAX), { abortAfter: MAX / 2 })
    assert.is(r.ok, false, 'the attacker hung up')
    assert.ok(r.tokens >= MAX / 2, `got ${r.tokens} tokens before hanging up: ${String(r.error)}`)
    received.push(r.tokens)
  }
  const chain = s.chainOf(s.a)
  const least = received.reduce((n, t) => n + worth(t), 0n)
  // the node notices the closed stream at its next token write: wait until all three are settled
  await until('the aborted jobs are recorded', async () => (await chain.rewards()).totals.pending >= least)
  const paid = await claimAndRead(s, s.a, attacker.account.address)
  // what the node recorded per job: the tokens it sent (the client may have hung up on a few that
  // were on the wire), never fewer than the client received and never more than maxNewTokens
  const channel = channelKey(attacker.account.address, s.operator(s.a), s.adapterId)
  const jobs = await chain.store.receiptsFor(channel, 0n, paid)
  assert.is(jobs.length, 3, 'one record per aborted job')
  const delivered = jobs.map((j) => j.partial?.delivered ?? -1)
  for (const [i, d] of delivered.entries()) {
    assert.ok(d >= received[i]! && d <= MAX, `job ${i}: delivered ${d}, the client received ${received[i]}`)
    assert.is(BigInt(jobs[i]!.amountDue), worth(d), `job ${i} owes amountDue(prompt, delivered)`)
  }
  const due = delivered.reduce((n, d) => n + worth(d), 0n)
  assert.is(paid, due, `paid ${paid} == Σ amountDue(prompt, delivered) = ${due}, to the wei`)
})

test.run()
