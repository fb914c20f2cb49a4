// H2 (docs/THREATS.md): a paying client closes the stream after half its tokens. Before the fix
// nothing was recorded before `done`, so the node was paid 0 for what it delivered. Now the
// tokens are recorded as they are sent: an abort still leaves a claim for every token delivered.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { addrOf, attackStage, claimAndRead, countTokens, job, until, worth } from './fixture.ts'

const t = attackStage('h2', { parties: { attacker: { account: 4 } } })

test('three paid jobs cancelled at half their tokens: the node is paid what it delivered', async () => {
  const { s, attacker } = t
  const MAX = 64
  let received = 0n
  for (let i = 0; i < 3; i++) {
    // the payer signs a proper voucher; the attacker just hangs up half way
    const r = await countTokens(attacker.infer, addrOf(s.a), job(s, MAX), { abortAfter: MAX / 2 })
    assert.is(r.ok, false, 'the attacker hung up')
    assert.ok(r.tokens >= MAX / 2, `got ${r.tokens} tokens before hanging up: ${String(r.error)}`)
    received += worth(r.tokens)
  }
  const chain = s.chainOf(s.a)
  // the node notices the closed stream at its next token write: wait until all three are settled
  await until('the aborted jobs are recorded', async () => (await chain.rewards()).totals.pending >= received)
  const paid = await claimAndRead(s, s.a, attacker.account.address)
  assert.ok(paid >= received, `paid ${paid} covers the ${received} wei of tokens the client received`)
  assert.ok(paid <= 3n * worth(MAX), 'never more than the worst case signed')
})

test.run()
