// T2 (docs/THREATS.md): a trainer claims more than it trained. This one trains 2 steps of a job
// whose budget covers 6, sends an honest signed statement (2 steps' tokens), and records the whole
// budget as owed, so its Claimer claims the budget. What bounds it: the client signed only its
// budget at the accepted price, so that is the most the chain pays (the contract refuses a claim
// above the signed maximum). What stops it: before paying a node again the client compares what
// the chain paid the node on its channel with what the node's statements owe, and refuses (and
// distrusts) a node that claimed more. Without that check the client keeps paying the cheat.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { amountDue } from '../../src/chain/eip712.ts'
import type { NodeComponents, Service } from '../../src/common/service.ts'
import type { PaymentGate } from '../../src/protocols/infer/gates.ts'
import { localTrainingProvider } from '../../src/protocols/training/provider.ts'
import { TrainService } from '../../src/protocols/training/train-protocol.ts'
import { OPEN, PRICE, trainStage } from './train-fixture.ts'

const t = trainStage('t2', {
  service:
    (s) =>
    (c: NodeComponents): Service => {
      const chain = c.services.chain!
      // the cheat: settle every paid job at its whole reservation, whatever it trained
      const gate: PaymentGate = {
        get domain() {
          return chain.domain
        },
        checkVoucher: (v, j) => chain.checkVoucher(v, j),
        recordPayment: (v, r) => chain.recordPayment(v, r),
        async openJob(v, j) {
          const real = await chain.openJob(v, j)
          return { ...real, finish: (r) => real.finish({ ...r, amountDue: j.maxAmountDue }) }
        }
      }
      const key = c.identity.privateKey
      const provider = localTrainingProvider({
        store: c.services.attribution!.store,
        models: { [s.model]: (c.config.infer?.models ?? [])[0]! },
        outRoot: c.dataDir.path,
        signer: { peerId: c.identity.peerId.toString(), sign: (d) => key.sign(d) }
      })
      return new TrainService({
        host: c.libp2p,
        provider,
        payment: () => ({
          gate,
          operator: c.identity.operator.account,
          peerId: c.identity.peerId.toString(),
          signPeer: (d) => key.sign(d),
          price: PRICE
        }),
        logger: c.logger.child('cheat')
      })
    }
})

test('a trainer that claims its whole budget is bounded by the voucher and not paid again', async () => {
  const victim = await t.party(7, OPEN, { audit: true })
  const budget = 6 * t.s.perStep
  const r = await victim.train(2, budget)
  const due = amountDue(0, 2 * t.s.perStep, PRICE)
  assert.is(r.payment!.body.amountDue, due.toString(), 'the statement is honest: 2 steps')
  assert.is(await victim.payer.spent(), due)

  await t.s.chain.claimer.claimNow()
  const claimed = await victim.claimed()
  const signedMax = amountDue(0, budget, PRICE)
  assert.is(claimed, signedMax, 'the cheat claimed its whole budget, and no more: what the client signed')
  assert.ok(claimed > due)

  // the next job: the client sees the chain paid the node more than its statements owe
  try {
    await victim.train(1, t.s.perStep)
    assert.unreachable('the client must not pay the cheat again')
  } catch (err) {
    const e = err as { code?: string; message?: string }
    assert.is(e.code, 'PAYMENT_REFUSED', String(err))
    assert.match(String(e.message), new RegExp(`claimed ${claimed} wei`))
  }
  assert.is(await victim.claimed(), claimed, 'nothing more was signed or claimed')
})

test.run()
