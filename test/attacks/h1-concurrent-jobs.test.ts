// H1 (docs/THREATS.md): six concurrent jobs on one channel, all sent with one voucher that covers
// one job's worst case. Before the fix all six streamed and five were found UNDERPAID only
// afterwards (unpaid). Now each job reserves its worst case (prompt + maxNewTokens at the price)
// before the first token and concurrent jobs see each other's reservations: the jobs beyond
// the voucher are refused before any token, and every token delivered is paid.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { addrOf, attackStage, claimAndRead, countTokens, job, rawVoucher, wire, worth } from './fixture.ts'

const t = attackStage('h1', { parties: { attacker: { account: 4 } } })

test('six concurrent jobs on a voucher for one: every token delivered is paid', async () => {
  const { s, attacker } = t
  const MAX = 48
  const v = wire(await rawVoucher(attacker, s, s.operator(s.a), worth(MAX)))
  const runs = await Promise.all(
    Array.from({ length: 6 }, () => countTokens(attacker.infer, addrOf(s.a), job(s, MAX, { voucher: v })))
  )
  const served = runs.filter((r) => r.tokens > 0)
  const delivered = served.reduce((n, r) => n + worth(r.tokens), 0n)
  assert.ok(served.length >= 1, 'the job the voucher covers is served')
  assert.ok(delivered <= worth(MAX), 'no more is served than the voucher covers')
  const paid = await claimAndRead(s, s.a, attacker.account.address)
  assert.is(paid, delivered, 'every delivered token is paid to the node, to the wei')
})

test.run()
