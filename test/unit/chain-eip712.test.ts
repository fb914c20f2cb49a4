// Vouchers and receipts as EIP-712 typed data: signatures bind chain id and contract, the wire
// form is schema-checked, and amounts follow docs/INTERFACES.md.
import assert from 'node:assert/strict'
import { test } from 'uvu'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import {
  amountDue,
  compactSignature,
  compactToHex,
  receiptHash,
  recoverVoucherSigner,
  signReceipt,
  signVoucher,
  verifyReceiptSignature,
  verifyVoucherSignature,
  voucherFromJson,
  voucherHash,
  voucherToJson
} from '../../src/chain/eip712.ts'
import { VoucherRejectedError } from '../../src/chain/errors.ts'

const client = privateKeyToAccount(generatePrivateKey())
const node = privateKeyToAccount(generatePrivateKey())
const domain = { chainId: 31337, settlement: '0x5FbDB2315678afecb367f032d93F642f64180aa3' as const }
const adapterId = `0x${'ab'.repeat(32)}` as const

test('a voucher verifies for its own domain only', async () => {
  const v = await signVoucher(client, domain, { node: node.address, adapterId, cumulativeAmount: 12345n })
  assert.equal(await recoverVoucherSigner(domain, v), client.address)
  assert.ok(await verifyVoucherSignature(domain, v))
  assert.ok(!(await verifyVoucherSignature({ ...domain, chainId: 161201 }, v)))
  assert.ok(!(await verifyVoucherSignature({ ...domain, settlement: node.address }, v)))
  assert.ok(!(await verifyVoucherSignature(domain, { ...v, cumulativeAmount: 12346n })))
  assert.ok(!(await verifyVoucherSignature(domain, { ...v, node: client.address })))
  assert.notEqual(voucherHash(domain, v), voucherHash({ ...domain, chainId: 1 }, v))
})

test('compact (EIP-2098) signatures round-trip', async () => {
  const v = await signVoucher(client, domain, { node: node.address, adapterId, cumulativeAmount: 1n })
  const c = compactSignature(v.signature)
  assert.equal(c.r.length, 66)
  assert.equal(c.vs.length, 66)
  assert.equal(compactToHex(c).length, 130)
})

test('voucher JSON: round-trip and schema refusals', async () => {
  const v = await signVoucher(client, domain, { node: node.address, adapterId, cumulativeAmount: 10n ** 30n })
  const back = voucherFromJson(JSON.parse(JSON.stringify(voucherToJson(v))))
  assert.deepEqual(back, { ...v, adapterId: v.adapterId.toLowerCase(), signature: v.signature.toLowerCase() })
  const j = voucherToJson(v)
  const bad: unknown[] = [
    null,
    'x',
    { ...j, extra: 1 },
    { ...j, client: '0x1234' },
    { ...j, adapterId: '0x12' },
    { ...j, cumulativeAmount: '-1' },
    { ...j, cumulativeAmount: '0' },
    { ...j, cumulativeAmount: '01' },
    { ...j, cumulativeAmount: 5 },
    { ...j, cumulativeAmount: (2n ** 256n).toString() },
    { ...j, signature: '0x00' }
  ]
  for (const b of bad) {
    assert.throws(
      () => voucherFromJson(b),
      (e: unknown) => e instanceof VoucherRejectedError && e.code === 'MALFORMED_VOUCHER',
      JSON.stringify(b)
    )
  }
})

test('receipts: operator signature binds the domain; chainless receipts use chain 0', async () => {
  const r = {
    jobId: `0x${'01'.repeat(16)}${'00'.repeat(16)}` as const,
    operator: node.address,
    modelHash: `0x${'02'.repeat(32)}` as const,
    adapterId,
    inputHash: `0x${'03'.repeat(32)}` as const,
    outputHash: `0x${'04'.repeat(32)}` as const,
    promptTokens: 10,
    outputTokens: 20,
    amountDue: 30n,
    attributionHash: `0x${'05'.repeat(32)}` as const,
    finishedAt: 1_700_000_000_000n
  }
  const sig = await signReceipt(node, domain, r)
  assert.ok(await verifyReceiptSignature(domain, r, sig))
  assert.ok(!(await verifyReceiptSignature(null, r, sig)))
  assert.ok(!(await verifyReceiptSignature(domain, { ...r, outputTokens: 21 }, sig)))
  const chainless = await signReceipt(node, null, r)
  assert.ok(await verifyReceiptSignature(null, r, chainless))
  assert.notEqual(receiptHash(null, r), receiptHash(domain, r))
})

test('amountDue rounds up per docs/INTERFACES.md', () => {
  assert.equal(amountDue(1, 0, 1000n), 1n)
  assert.equal(amountDue(1, 0, 1n), 1n)
  assert.equal(amountDue(999, 1, 7n), 7n)
  assert.equal(amountDue(1000, 1, 7n), 8n)
  assert.equal(amountDue(5, 5, 0n), 0n)
})

test.run()
