// T1 (docs/THREATS.md): a client stops paying midway through a training job. It cannot sign less
// than the job's budget and still be trained (the budget is reserved against its voucher and its
// escrow before any step), and hanging up after a few steps does not make the trained steps free:
// each step's tokens are recorded as owed before its progress frame goes out, the trainer stops
// training for a client that went away, and what was trained is settled and claimed to the wei.
// Without the reservation the underfunded job trains for free; without the per-step record the
// cut-off job is paid 0.
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { zeroHash } from 'viem'
import { amountDue, signVoucher, voucherToJson } from '../../src/chain/eip712.ts'
import { channelKey } from '../../src/chain/vouchers.ts'
import type { TrainingPayer } from '../../src/protocols/training/request.ts'
import { until } from '../helpers/wait.ts'
import { OPEN, PRICE, trainStage } from './train-fixture.ts'

const t = trainStage('t1')
const jobDirs = async () => (await readdir(join(t.s.trainer.dataDir.path, 'trained'))).length

test('a voucher below the budget is refused before any step is trained', async () => {
  const attacker = await t.party(5, OPEN)
  const budget = 4 * t.s.perStep
  // signs half of what the node's terms ask for, whatever they say
  const cheap: TrainingPayer = {
    async voucherForTerms(_peer, _job, terms) {
      const v = await signVoucher(attacker.account, attacker.chain.domain, {
        node: terms.operator,
        adapterId: zeroHash,
        cumulativeAmount: BigInt(terms.maxAmountDue) / 2n
      })
      return {
        voucher: voucherToJson(v) as unknown as Record<string, unknown>,
        terms: { operator: terms.operator, pricePer1kTokens: terms.pricePer1kTokens }
      }
    },
    hashOf: () => '0x',
    statementMismatch: () => undefined,
    ended: async () => {}
  }
  const before = await jobDirs()
  try {
    await attacker.train(4, budget, { payer: cheap })
    assert.unreachable('an underfunded job must not be trained')
  } catch (err) {
    const e = err as { code?: string; data?: { payment?: { reason?: string } } }
    assert.is(e.code, 'PAYMENT_REQUIRED', String(err))
    assert.is(e.data?.payment?.reason, 'UNDERPAID', String(err))
  }
  assert.is(await jobDirs(), before, 'no training started')
  assert.is((await t.s.chain.rewards()).totals.pending, 0n)
})

test('a client that hangs up after 2 of 40 steps still pays for every step trained, to the wei', async () => {
  const attacker = await t.party(6, OPEN)
  const ctl = new AbortController()
  let received = 0
  try {
    await attacker.train(40, 40 * t.s.perStep, {
      signal: ctl.signal,
      onProgress: (p) => {
        received = p.tokens!
        if (received >= 2 * t.s.perStep) ctl.abort()
      }
    })
    assert.unreachable('the attacker hung up')
  } catch (err) {
    assert.ok(received >= 2 * t.s.perStep, `hung up after ${received} tokens: ${String(err)}`)
  }
  const channel = channelKey(attacker.account.address, t.s.operator, zeroHash)
  await until('the cut-off job is settled', async () => (await t.s.chain.rewards()).totals.pending > 0n)
  await t.s.chain.claimer.claimNow()
  const paid = await attacker.claimed()
  const jobs = await t.s.chain.store.receiptsFor(channel, 0n, paid)
  assert.is(jobs.length, 1, 'one record for the cut-off job')
  const trained = jobs[0]!.partial?.delivered ?? -1
  assert.ok(
    trained >= received,
    `the node recorded ${trained} trained tokens, the client heard of ${received}`
  )
  assert.ok(trained < 40 * t.s.perStep, `the trainer stopped for the client that left (${trained} tokens)`)
  assert.is(trained % t.s.perStep, 0, 'whole steps')
  assert.is(paid, amountDue(0, trained, PRICE), 'paid == ceil(trained × price / 1000), to the wei')
})

test.run()
