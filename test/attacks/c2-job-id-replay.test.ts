// C2 (docs/THREATS.md): the client picks jobId. Before the fix a paid job's jobId, replayed with the
// same voucher, was served again and again while recordPayment added nothing (increase 0):
// free inference for one payment. Now a job id is single-use per channel: a replay is refused
// before any work (JOB_REPLAYED), and every token the node delivered is claimed.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { newJobId } from '../../src/client/client.ts'
import type { InferError } from '../../src/protocols/infer/errors.ts'
import {
  addrOf,
  attackStage,
  claimAndRead,
  countTokens,
  job,
  OPEN,
  rawVoucher,
  wire,
  worth
} from './fixture.ts'

const t = attackStage('c2', { parties: { attacker: { account: 4 } } })

test('one paid job and five replays of its jobId: every token served is paid', async () => {
  const { s, attacker } = t
  // a voucher generous enough for every replay: the only thing stopping them is the job id
  const v = wire(await rawVoucher(attacker, s, s.operator(s.a), OPEN))
  const jobId = newJobId()
  let delivered = 0n
  const runs = []
  for (let i = 0; i < 6; i++) {
    const r = await countTokens(attacker.infer, addrOf(s.a), job(s, 48, { voucher: v, jobId }))
    runs.push(r)
    delivered += r.tokens > 0 ? worth(r.tokens) : 0n
  }
  assert.ok(runs[0]!.ok, String(runs[0]!.error))
  for (const r of runs.slice(1)) {
    assert.is(r.ok, false, 'a replayed job id is not served again')
    assert.is(r.tokens, 0)
    assert.is((r.error as InferError).code, 'PAYMENT_REQUIRED')
    assert.is((r.error as InferError).payment?.reason, 'JOB_REPLAYED')
  }
  const paid = await claimAndRead(s, s.a, attacker.account.address)
  assert.is(paid, delivered, 'every delivered token is paid to the node, to the wei')
})

test.run()
