// JobPayer: which voucher goes with a job, from the terms a node sends with PAYMENT_REQUIRED.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Address, Hex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import {
  recoverVoucherSigner,
  signTerms,
  termsJobId,
  voucherFromJson,
  voucherHash
} from '../../src/chain/eip712.ts'
import { VoucherWallet } from '../../src/chain/wallet.ts'
import { JobPayer, PaymentRefusedError } from '../../src/client/payer.ts'
import type { PaymentTerms } from '../../src/protocols/infer/codec.ts'
import type { Receipt } from '../../src/protocols/infer/receipt.ts'

const domain = { chainId: 31337, settlement: '0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9' as Address }
const operatorKey = privateKeyToAccount(generatePrivateKey())
const operator = operatorKey.address
const JOB = `0x${'ab'.repeat(16)}` as Hex
/** Terms as a node sends them: signed by its operator for JOB (H4); `over` applies after signing
 * unless `sign` is set, as a relay's rewrite would. */
async function terms(over: Partial<PaymentTerms> = {}, sign = false): Promise<PaymentTerms> {
  const base = {
    reason: 'VOUCHER_MISSING' as const,
    operator,
    pricePer1kTokens: '1000000',
    maxAmountDue: '5000',
    chainId: domain.chainId,
    settlement: domain.settlement,
    jobId: JOB,
    ...(sign ? over : {})
  }
  const signature = await signTerms(operatorKey, domain, {
    operator: base.operator,
    jobId: termsJobId(base.jobId),
    pricePer1kTokens: BigInt(base.pricePer1kTokens),
    maxAmountDue: BigInt(base.maxAmountDue)
  })
  return { ...base, signature, ...(sign ? {} : over) }
}
const job = { model: 'm', adapter: null, promptIds: [1, 2, 3], params: { maxNewTokens: 7 } }

function payer(maxPrice?: bigint) {
  const client = privateKeyToAccount(generatePrivateKey())
  const wallet = new VoucherWallet(client, domain)
  return { client, wallet, payer: new JobPayer(wallet, domain, { maxPricePer1kTokens: maxPrice }) }
}

test('no terms known: no voucher; the terms give a voucher for their operator and worst case', async () => {
  const { client, payer: p } = payer()
  assert.is(await p.voucherFor('/peer', job), null)
  const wire = await p.voucherForTerms('/peer', job, await terms(), JOB)
  const v = voucherFromJson(wire)
  assert.is(v.node, operator)
  assert.is(v.cumulativeAmount, 5000n)
  assert.is(await recoverVoucherSigner(domain, v), client.address)
  assert.is(p.hashOf(wire), voucherHash(domain, v))
})

test('known terms: the next job estimates its own worst case; settle adds the receipt amount', async () => {
  const { wallet, payer: p } = payer()
  const first = await p.voucherForTerms('/peer', job, await terms(), JOB)
  // the job ends with its receipt: its amount is owed and its worst case no longer in flight
  await p.ended(first, {
    receipt: { body: { voucher: '0x01', amountDue: '9', operator, adapter: null } } as unknown as Receipt,
    started: true
  })
  assert.equal(await wallet.channel(operator, `0x${'00'.repeat(32)}` as Hex), { signed: 5000n, owed: 9n })
  const next = voucherFromJson((await p.voucherFor('/peer', job))!)
  // (3 prompt + 7 new) tokens × 1e6 / 1000 = 10,000, on top of 9 owed
  assert.is(next.cumulativeAmount, 10_009n)
  assert.is(await p.voucherFor('/other-entry', job), null, 'terms are per entry peer')
})

test('a job cut off after it started counts its worst case as spent; one refused before costs nothing', async () => {
  const { wallet, payer: p } = payer()
  const adapterId = `0x${'00'.repeat(32)}` as Hex
  const cut = await p.voucherForTerms('/peer', job, await terms(), JOB)
  // aborted mid-stream: the node may claim up to the worst case (5000), so the next voucher covers it
  await p.ended(cut, { started: true })
  assert.equal(await wallet.channel(operator, adapterId), { signed: 5000n, owed: 5000n })
  const refused = await p.voucherFor('/peer', job)
  await p.ended(refused!, { started: false })
  assert.equal((await wallet.channel(operator, adapterId)).owed, 5000n)
  // nothing in flight any more: the next voucher is owed + this job's worst case
  assert.is(voucherFromJson((await p.voucherFor('/peer', job))!).cumulativeAmount, 15_000n)
})

test('another chain or a price over the cap is refused, nothing signed', async () => {
  const { wallet, payer: p } = payer(500_000n)
  for (const t of [
    await terms({ chainId: 1 }, true),
    await terms({ settlement: operator }, true),
    await terms()
  ]) {
    try {
      await p.voucherForTerms('/peer', job, t, JOB)
      assert.unreachable('signed')
    } catch (err) {
      assert.instance(err, PaymentRefusedError)
    }
  }
  assert.equal(await wallet.channel(operator, `0x${'00'.repeat(32)}` as Hex), { signed: 0n, owed: 0n })
})

// H4 (docs/THREATS.md): the payer signs only what the job can cost, and checks the receipt
// against the terms its voucher accepted.
test('terms that ask to reserve more than the job can cost are refused, nothing signed', async () => {
  const { wallet, payer: p } = payer()
  // (3 + 7) tokens at 1e6 per 1k = 10,000 wei at most: a relay that inflates the ask gets nothing
  try {
    await p.voucherForTerms('/peer', job, await terms({ maxAmountDue: '10001' }, true), JOB)
    assert.unreachable('signed an inflated worst case')
  } catch (err) {
    assert.instance(err, PaymentRefusedError)
    assert.match((err as Error).message, /can cost at most 10000/)
  }
  assert.equal(await wallet.channel(operator, `0x${'00'.repeat(32)}` as Hex), { signed: 0n, owed: 0n })
})

test('a receipt whose operator, price or amount differ from the accepted terms is named', async () => {
  const { payer: p } = payer()
  const v = await p.voucherForTerms('/peer', job, await terms(), JOB)
  const body = { operator, pricePer1kTokens: '1000000', promptTokens: 3, outputTokens: 2, amountDue: '5000' }
  const r = (b: Partial<typeof body>) => ({ body: { ...body, ...b } }) as unknown as Receipt
  assert.is(p.receiptMismatch(v, r({})), undefined, 'an honest receipt matches')
  assert.is(
    p.receiptMismatch(v, r({ operator: privateKeyToAccount(generatePrivateKey()).address }))?.field,
    'body.operator'
  )
  assert.is(
    p.receiptMismatch(v, r({ pricePer1kTokens: '2000000', amountDue: '10000' }))?.field,
    'body.pricePer1kTokens'
  )
  assert.is(p.receiptMismatch(v, r({ amountDue: '5001' }))?.field, 'body.amountDue')
  // more than the signed worst case (5000 wei: the node's ask) cannot be owed
  assert.is(p.receiptMismatch(v, r({ outputTokens: 3, amountDue: '6000' }))?.field, 'body.amountDue')
})

test('terms a relay changed (price, worst case, operator, job) are refused, nothing signed', async () => {
  const { wallet, payer: p } = payer()
  const other = privateKeyToAccount(generatePrivateKey()).address
  const rewritten = [
    await terms({ pricePer1kTokens: '4000000', maxAmountDue: '20000' }),
    await terms({ maxAmountDue: '9000' }),
    await terms({ operator: other }),
    await terms({ jobId: `0x${'cd'.repeat(16)}` as Hex }),
    // a node before H4 sends its terms unsigned: they still decode, nothing is signed for them
    await terms().then(({ signature: _s, jobId: _j, ...unsigned }) => unsigned)
  ]
  for (const t of rewritten) {
    try {
      await p.voucherForTerms('/peer', job, t, JOB)
      assert.unreachable('signed rewritten terms')
    } catch (err) {
      assert.instance(err, PaymentRefusedError)
      assert.match((err as Error).message, /not signed by their operator/)
    }
  }
  // old terms of another job, genuinely signed, are not this job's
  const genuine = await terms()
  const refused = await p.voucherForTerms('/peer', job, genuine, `0x${'00'.repeat(16)}`).then(
    () => false,
    (err) => err instanceof PaymentRefusedError
  )
  assert.ok(refused, "a node's signed terms for another job are refused")
  for (const who of [operator, other])
    assert.equal(await wallet.channel(who, `0x${'00'.repeat(32)}` as Hex), { signed: 0n, owed: 0n })
  assert.equal(p.termsOf(await p.voucherForTerms('/peer', job, await terms(), JOB)), {
    operator,
    pricePer1kTokens: '1000000'
  })
})

test('an operator whose receipt broke the signed terms is not paid again', async () => {
  const { payer: p } = payer()
  const v = await p.voucherForTerms('/peer', job, await terms(), JOB)
  const body = { operator, pricePer1kTokens: '1000000', promptTokens: 3, outputTokens: 2, amountDue: '5000' }
  const bad = { body: { ...body, amountDue: '5001' } } as unknown as Receipt
  assert.is(p.receiptMismatch(v, bad)?.field, 'body.amountDue')
  assert.is(await p.voucherFor('/peer', job), null, 'no voucher from remembered terms')
  try {
    await p.voucherForTerms('/peer', job, await terms(), JOB)
    assert.unreachable('paid a cheating operator')
  } catch (err) {
    assert.instance(err, PaymentRefusedError)
  }
})

test.run()
