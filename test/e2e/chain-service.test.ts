// The chain layer as the node will run it: ChainService with the `local` preset starts anvil,
// deploys, funds the operator key; a client deposits and pays a job with a voucher; the service
// checks the voucher, records it with the receipt, claims it, and reports the rewards.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { ChainClient } from '../../src/chain/client.ts'
import { amountDue, signVoucher } from '../../src/chain/eip712.ts'
import { VoucherRejectedError } from '../../src/chain/errors.ts'
import { ChainService } from '../../src/chain/service.ts'
import { splitPayment } from '../../src/chain/shares.ts'
import { VoucherWallet } from '../../src/chain/wallet.ts'

const OPEN = 10n ** 18n

test('local preset: check, record, claim and report a paid job', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'openlora-chain-svc-'))
  const db = new Level<string, Uint8Array>(dir, { valueEncoding: 'view' })
  const operator = privateKeyToAccount(generatePrivateKey())
  const svc = new ChainService(
    {
      chain: { preset: 'local', withdrawalDelaySec: 7200 },
      claimer: { claimIntervalSec: 3600, minClaim: 10n * OPEN }
    },
    { db, operator }
  )
  try {
    await svc.start()
    const local = svc.localChain!
    const [, ownerAcc, clientAcc] = local.accounts
    const owner = new ChainClient({ ...svc.endpoint, account: ownerAcc! })
    const client = new ChainClient({ ...svc.endpoint, account: clientAcc! })
    const adapterId = `0x${'5a'.repeat(32)}` as const
    await owner.registerAdapter({ adapterId, modelHash: `0x${'01'.repeat(32)}`, feePer1kTokens: OPEN })
    await client.deposit(3n * OPEN, { node: operator.address })

    const due = amountDue(500, 500, OPEN) // 1 OPEN
    const v = await signVoucher(clientAcc!, svc.domain, {
      node: operator.address,
      adapterId,
      cumulativeAmount: due
    })
    const ok = await svc.checkVoucher(v, { adapterId, maxAmountDue: due })
    assert.equal(ok.increase, due)
    await svc.recordPayment(v, { jobId: `0x${'01'.repeat(16)}`, amountDue: due })
    // the same voucher again pays nothing for a second job
    try {
      await svc.checkVoucher(v, { adapterId, maxAmountDue: due })
      assert.fail('replayed voucher accepted')
    } catch (err) {
      assert.ok(err instanceof VoucherRejectedError)
      assert.equal(err.code, 'UNDERPAID')
    }
    let r = await svc.rewards()
    assert.equal(r.totals.pending, due)
    assert.equal(r.totals.claimed, 0n)

    const out = await svc.claimer.claimNow()
    assert.equal(out[0]?.total, due)
    r = await svc.rewards()
    assert.equal(r.totals.pending, 0n)
    assert.equal(r.totals.claimed, due)
    assert.equal(r.totals.earned, splitPayment(due).node)
    assert.equal(r.withdrawable, splitPayment(due).node)
    assert.deepEqual(
      r.perAdapter.map((a) => a.adapterId),
      [adapterId]
    )
    // a client wallet signs ahead for two jobs' worst cases; the node accepts both, the second
    // one partly covered by the first one's unused margin, and claims only what the receipts owe
    const wallet = new VoucherWallet(clientAcc!, svc.domain)
    await wallet.settle({ node: operator.address, adapterId, amountDue: due }) // the first job
    let owed = 0n
    for (const [i, [maxDue, realDue]] of [
      [5n * 10n ** 17n, 2n * 10n ** 17n],
      [4n * 10n ** 17n, 1n * 10n ** 17n]
    ].entries()) {
      const w = await wallet.voucherFor({ node: operator.address, adapterId, maxAmountDue: maxDue! })
      await svc.checkVoucher(w, { adapterId, maxAmountDue: maxDue! })
      await svc.recordPayment(w, {
        jobId: `0x${(i + 2).toString(16).padStart(32, '0')}`,
        amountDue: realDue!
      })
      await wallet.settle({ node: operator.address, adapterId, amountDue: realDue! })
      // the job ended: its worst case no longer counts as in flight
      wallet.release({ node: operator.address, adapterId, maxAmountDue: maxDue! })
      owed += realDue!
    }
    assert.equal(
      (await wallet.channel(operator.address, adapterId)).signed,
      due + 2n * 10n ** 17n + 4n * 10n ** 17n
    )
    // pending is what the receipts owe (0.3 OPEN), not the voucher's 0.6 OPEN above the claim
    assert.equal(owed, 3n * 10n ** 17n)
    assert.equal((await svc.rewards()).totals.pending, owed)
    assert.equal(await wallet.spent(), due + owed)
    const second = await svc.claimer.claimNow()
    assert.equal(second[0]?.total, owed)
    assert.equal(await svc.client.claimedOf(clientAcc!.address, operator.address, adapterId), due + owed)
    assert.equal(
      (await svc.client.escrowOf(clientAcc!.address, operator.address)).balance,
      3n * OPEN - due - owed
    )
    assert.equal((await svc.rewards()).totals.pending, 0n)

    // the operator key (not a dev account) had gas money for the claim and can withdraw
    await svc.client.withdrawCredits()
    assert.equal(
      await svc.client.tokenBalance(operator.address),
      splitPayment(due).node + splitPayment(owed).node
    )
  } finally {
    await svc.stop()
    await db.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
