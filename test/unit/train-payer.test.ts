// Paying for training jobs (src/client/train-payer.ts over JobPayer): the worst case signed is the
// budget of trained tokens at the node's signed price and no more; a statement is accepted only at
// exactly ceil(trained × price / 1000) for the voucher's operator and price (else the operator is
// not paid again); the claim audit refuses a node the chain paid more than its statements owe.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type Address, type Hex, zeroHash } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { signTerms, termsJobId, voucherFromJson } from '../../src/chain/eip712.ts'
import { VoucherWallet } from '../../src/chain/wallet.ts'
import { JobPayer, type PayerOptions } from '../../src/client/payer.ts'
import { trainingPayer } from '../../src/client/train-payer.ts'
import type { PaymentTerms } from '../../src/protocols/infer/terms.ts'

const domain = { chainId: 31337, settlement: '0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9' as Address }
const op = privateKeyToAccount(generatePrivateKey())
const PRICE = 1_234_567n
const JOB = `0x${'cd'.repeat(16)}` as Hex

async function terms(maxAmountDue: bigint, jobId = JOB): Promise<PaymentTerms> {
  const t = {
    operator: op.address,
    pricePer1kTokens: PRICE.toString(),
    maxAmountDue: maxAmountDue.toString()
  }
  const signature = await signTerms(op, domain, {
    operator: op.address,
    jobId: termsJobId(jobId),
    pricePer1kTokens: PRICE,
    maxAmountDue
  })
  return {
    reason: 'VOUCHER_MISSING',
    ...t,
    chainId: domain.chainId,
    settlement: domain.settlement,
    jobId,
    signature
  }
}
const ceil = (tokens: number) => (BigInt(tokens) * PRICE + 999n) / 1000n

function setup(opts: PayerOptions = {}) {
  const wallet = new VoucherWallet(privateKeyToAccount(generatePrivateKey()), domain)
  const payer = new JobPayer(wallet, domain, opts)
  return { wallet, payer, tp: trainingPayer(payer) }
}

test('signs the budget at the signed price on the adapterId-0 channel, and refuses to reserve more', async () => {
  const { tp } = setup()
  const { voucher, terms: accepted } = await tp.voucherForTerms(
    'p',
    { model: 'm', maxTokens: 500 },
    await terms(ceil(500)),
    JOB
  )
  const v = voucherFromJson(voucher)
  assert.is(v.adapterId, zeroHash)
  assert.is(v.cumulativeAmount, ceil(500))
  assert.equal(accepted, { operator: op.address, pricePer1kTokens: PRICE.toString() })
  try {
    await tp.voucherForTerms('p', { model: 'm', maxTokens: 500 }, await terms(ceil(501)), JOB)
    assert.unreachable('a worst case above the budget is not signed')
  } catch (err) {
    assert.is((err as { code?: string }).code, 'PAYMENT_REFUSED')
  }
})

test('a statement is accepted only at the exact amount; a wrong one distrusts the operator', async () => {
  const { tp, wallet } = setup()
  const { voucher } = await tp.voucherForTerms(
    'p',
    { model: 'm', maxTokens: 500 },
    await terms(ceil(500)),
    JOB
  )
  const s = { operator: op.address, pricePer1kTokens: PRICE.toString(), trainedTokens: 300 }
  assert.is(tp.statementMismatch(voucher, { ...s, amountDue: ceil(300).toString() }), undefined)
  await tp.ended(voucher, { amountDue: ceil(300), started: true })
  assert.is((await wallet.channel(op.address, zeroHash)).owed, ceil(300), 'the wallet owes the statement')
  const J2 = `0x${'ef'.repeat(16)}` as Hex
  const { voucher: v2 } = await tp.voucherForTerms(
    'p',
    { model: 'm', maxTokens: 500 },
    await terms(ceil(500), J2),
    J2
  )
  assert.is(voucherFromJson(v2).cumulativeAmount, ceil(300) + ceil(500), 'owed + the next budget')
  assert.match(String(tp.statementMismatch(v2, { ...s, amountDue: (ceil(300) + 1n).toString() })), /owes/)
  try {
    await tp.voucherForTerms('p', { model: 'm', maxTokens: 500 }, await terms(ceil(500)), JOB)
    assert.unreachable('an operator that overcharged is not paid again')
  } catch (err) {
    assert.is((err as { code?: string }).code, 'PAYMENT_REFUSED')
  }
})

test('the claim audit refuses a node the chain paid more than its statements owe', async () => {
  let claimed = 0n
  const { tp } = setup({ claimedOf: async () => claimed })
  const { voucher } = await tp.voucherForTerms(
    'p',
    { model: 'm', maxTokens: 500 },
    await terms(ceil(500)),
    JOB
  )
  await tp.ended(voucher, { amountDue: ceil(100), started: true })
  claimed = ceil(100)
  const J2 = `0x${'ef'.repeat(16)}` as Hex
  const ok = await tp.voucherForTerms('p', { model: 'm', maxTokens: 500 }, await terms(ceil(500), J2), J2)
  await tp.ended(ok.voucher, { started: false })
  claimed = ceil(500)
  try {
    await tp.voucherForTerms('p', { model: 'm', maxTokens: 500 }, await terms(ceil(500)), JOB)
    assert.unreachable('refused')
  } catch (err) {
    assert.is((err as { code?: string }).code, 'PAYMENT_REFUSED')
    assert.match((err as Error).message, /claimed/)
  }
})

test.run()
