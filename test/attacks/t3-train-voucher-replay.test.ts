// T3 (docs/THREATS.md): a client replays the voucher of a paid training job to be trained again
// for free: the same request (job id and voucher) resent, and the same voucher under a new job id.
// A voucher must cover what the channel owes plus the new job's budget (UNDERPAID, as H1) and a job
// id is single use on its channel even under a voucher that does cover it (JOB_REPLAYED, as C2),
// both checked before any step is trained.
// Without them the replays train for free and the trainer is paid for one job.
import { randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { zeroHash } from 'viem'
import { amountDue, signVoucher, voucherToJson } from '../../src/chain/eip712.ts'
import { trainingPayer } from '../../src/client/train-payer.ts'
import { framed } from '../../src/protocols/shared/framed.ts'
import {
  encodeTrainFrame,
  TrainFrameSchema,
  type TrainWireRequest
} from '../../src/protocols/training/codec.ts'
import { MAX_TRAIN_FRAME_BYTES, TRAIN_PROTOCOL } from '../../src/protocols/training/constants.ts'
import type { TrainingPayer } from '../../src/protocols/training/request.ts'
import { requestTraining } from '../../src/protocols/training/train-protocol.ts'
import { OPEN, PRICE, trainStage } from './train-fixture.ts'

const t = trainStage('t3')

test('a paid job’s voucher replayed, with its job id and with a new one, trains nothing', async () => {
  const attacker = await t.party(8, OPEN)
  const budget = 2 * t.s.perStep
  // the attacker keeps the voucher and terms its (honest) payer signed
  let kept:
    | { voucher: Record<string, unknown>; terms: { operator: `0x${string}`; pricePer1kTokens: string } }
    | undefined
  const honest = trainingPayer(attacker.payer)
  const recording: TrainingPayer = {
    ...honest,
    async voucherForTerms(...a) {
      const v = await honest.voucherForTerms(...a)
      kept = v
      return v
    }
  }
  const trainer = peerIdFromString(t.s.trainer.peerId)
  const first = await requestTraining(attacker.node, trainer, t.s.job(2), {
    budget: { maxTokens: budget },
    payer: recording
  })
  const due = amountDue(0, 2 * t.s.perStep, PRICE)
  assert.is(first.payment!.body.amountDue, due.toString())
  const dirs = async () => (await readdir(join(t.s.trainer.dataDir.path, 'trained'))).length
  const before = await dirs()

  const replay = async (jobId: string, voucher: Record<string, unknown>) => {
    const wire: TrainWireRequest = {
      ...t.s.job(2),
      jobId: jobId as `0x${string}`,
      budget: { maxTokens: budget },
      voucher,
      terms: kept!.terms
    }
    const stream = await attacker.node.dialProtocol(trainer, TRAIN_PROTOCOL)
    const lp = framed(stream, MAX_TRAIN_FRAME_BYTES)
    await lp.write(encodeTrainFrame(wire))
    for (;;) {
      const f = TrainFrameSchema.parse(JSON.parse(new TextDecoder().decode((await lp.read()).subarray())))
      if (f.t !== 'progress') {
        await stream.close().catch(() => {})
        return f
      }
    }
  }
  // 1. the same request again: the voucher covers nothing new
  const same = await replay(first.payment!.body.jobId, kept!.voucher)
  assert.is(same.t === 'error' && same.payment?.reason, 'UNDERPAID', 'the same request again is refused')
  // 2. the same job id with a voucher that does cover a new job: a job id is used once (C2)
  const covering = await signVoucher(attacker.account, attacker.chain.domain, {
    node: t.s.operator,
    adapterId: zeroHash,
    cumulativeAmount: due + amountDue(0, budget, PRICE)
  })
  const sameId = await replay(
    first.payment!.body.jobId,
    voucherToJson(covering) as unknown as Record<string, unknown>
  )
  assert.is(sameId.t === 'error' && sameId.payment?.reason, 'JOB_REPLAYED')
  // 3. the old voucher under a new job id: it covers what the channel owes, not another budget
  const fresh = await replay(`0x${randomBytes(16).toString('hex')}`, kept!.voucher)
  assert.is(fresh.t === 'error' && fresh.payment?.reason, 'UNDERPAID', 'the old voucher covers nothing new')
  assert.is(await dirs(), before, 'no replay was trained')

  await t.s.chain.claimer.claimNow()
  assert.is(await attacker.claimed(), due, 'the trainer is paid for the one job it trained, to the wei')
})

test.run()
