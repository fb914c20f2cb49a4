// H3 (docs/THREATS.md): a priced job for an adapter nobody registered on-chain. Before the fix the
// node served it and every claim for it was refused (UnknownAdapter): the work was never paid.
// Now the node refuses it before any work (UNKNOWN_ADAPTER, before the adapter is even fetched)
// and delivers nothing it cannot be paid for.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { InferError } from '../../src/protocols/infer/errors.ts'
import { addrOf, attackStage, claimAndRead, countTokens, job, worth } from './fixture.ts'

const t = attackStage('h3', { register: false, parties: { client: { account: 4 } } })

test('a priced job for an unregistered adapter is refused before any work', async () => {
  const { s, client } = t
  const runs = []
  for (let i = 0; i < 3; i++) runs.push(await countTokens(client.infer, addrOf(s.a), job(s, 32)))
  const delivered = runs.reduce((n, r) => n + (r.tokens > 0 ? worth(r.tokens) : 0n), 0n)
  for (const r of runs) {
    assert.is(r.tokens, 0, 'no token served that could never be claimed')
    assert.ok(r.error instanceof InferError, String(r.error))
    assert.is((r.error as InferError).code, 'PAYMENT_REQUIRED')
    assert.is((r.error as InferError).payment?.reason, 'UNKNOWN_ADAPTER')
    assert.match((r.error as InferError).message, /not registered on-chain/)
  }
  assert.is(await claimAndRead(s, s.a, client.account.address), delivered, 'every delivered token is paid')
})

test.run()
