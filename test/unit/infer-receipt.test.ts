import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { recoverTypedDataAddress } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { receiptHash } from '../../src/chain/eip712.ts'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import { cidForBytes } from '../../src/crypto/cid.ts'
import { hashTokenIds, sha256Hex } from '../../src/crypto/hash.ts'
import { decodeResponseFrame, encodeFrame, type ResponseFrame } from '../../src/protocols/infer/codec.ts'
import {
  amountDueFor,
  jobIdToBytes32,
  parseReceipt,
  type Receipt,
  type ReceiptBody,
  receiptDigest,
  receiptTypedData,
  signReceipt,
  verifyReceipt,
  ZERO_ADDRESS
} from '../../src/protocols/infer/receipt.ts'

const key = await generateKeyPair('Ed25519')
const peerId = peerIdFromPrivateKey(key).toString()
const operator = privateKeyToAccount(generatePrivateKey())
const domain = { chainId: 0, verifyingContract: ZERO_ADDRESS }
const promptIds = [1, 2, 3, 4]
const outputIds = [9, 8, 7]

function body(over: Partial<ReceiptBody> = {}): ReceiptBody {
  return {
    v: 1,
    jobId: `0x${'ab'.repeat(16)}`,
    peerId,
    operator: operator.address,
    modelId: 'tiny',
    modelHash: sha256Hex('weights'),
    adapter: cidForBytes(new Uint8Array([1, 2, 3])),
    inputHash: hashTokenIds(promptIds),
    outputHash: hashTokenIds(outputIds),
    promptTokens: promptIds.length,
    outputTokens: outputIds.length,
    pricePer1kTokens: '1000000000000',
    amountDue: amountDueFor(promptIds.length, outputIds.length, '1000000000000'),
    attribution: { method: 'provenance', datanets: [], contributors: [], proofHash: sha256Hex('p') },
    voucher: null,
    startedAt: 1_700_000_000_000,
    finishedAt: 1_700_000_000_500,
    ...over
  }
}

const signer = { peerId, signPeer: (d: Uint8Array) => key.sign(d), operator, domain }
const signed = async (over: Partial<ReceiptBody> = {}): Promise<Receipt> =>
  JSON.parse(JSON.stringify(await signReceipt(body(over), signer)))

test('amountDue rounds up per INTERFACES.md', () => {
  assert.is(amountDueFor(1, 0, '1'), '1')
  assert.is(amountDueFor(1000, 0, '7'), '7')
  assert.is(amountDueFor(1001, 0, '1000'), '1001')
  assert.is(amountDueFor(3, 4, '0'), '0')
})

test('a signed receipt verifies, also after a JSON round trip, with the caller expectations', async () => {
  const r = await signed()
  const v = await verifyReceipt(r, {
    jobId: r.body.jobId,
    peerId,
    promptIds,
    outputIds,
    adapter: r.body.adapter
  })
  assert.ok(v.ok, JSON.stringify(v))
})

test('EIP-712 typed data recovers the operator and pads the 16-byte job id', async () => {
  const r = await signed()
  const td = receiptTypedData(r.body, domain)
  assert.is(td.message.jobId, `0x${'ab'.repeat(16)}${'0'.repeat(32)}`)
  assert.is(jobIdToBytes32(r.body.jobId).length, 66)
  const addr = await recoverTypedDataAddress({ ...td, signature: r.operatorSignature })
  assert.is(addr, operator.address)
})

test("the digest equals the chain layer's receiptHash, so the settlement contract accepts it", async () => {
  const r = await signed()
  const td = receiptTypedData(r.body, domain)
  assert.is(receiptDigest(r.body, domain), receiptHash(null, td.message))
})

test('a tampered output hash is named when the caller knows the output tokens', async () => {
  const r = await signed()
  r.body.outputHash = hashTokenIds([1])
  const v = await verifyReceipt(r, { outputIds })
  assert.is(v.ok, false)
  if (!v.ok) {
    assert.is(v.field, 'outputHash')
    assert.is(v.check, 'expected')
  }
})

test('a tampered amount is caught by the consistency check and named', async () => {
  const r = await signed()
  r.body.amountDue = '1'
  const v = await verifyReceipt(r)
  assert.is(v.ok, false)
  if (!v.ok) assert.is(v.field, 'amountDue')
})

test('a changed model id breaks only the peer signature, and the message narrows the field set', async () => {
  const r = await signed()
  r.body.modelId = 'other'
  const v = await verifyReceipt(r)
  assert.is(v.ok, false)
  if (!v.ok) {
    assert.is(v.check, 'peerSignature')
    assert.match(v.message, /operator signature still holds/)
    assert.match(v.field, /modelId/)
  }
})

test('a changed token count with matching amount breaks both signatures', async () => {
  const r = await signed({ pricePer1kTokens: '0', amountDue: '0' })
  r.body.outputTokens = 99
  const v = await verifyReceipt(r)
  assert.is(v.ok, false)
  if (!v.ok) assert.is(v.check, 'peerSignature')
})

test('an operator signature from another key fails the operatorSignature check', async () => {
  const other = privateKeyToAccount(generatePrivateKey())
  const r = JSON.parse(
    JSON.stringify(
      await signReceipt(body(), { ...signer, operator: { ...other, address: operator.address } })
    )
  )
  const v = await verifyReceipt(r)
  assert.is(v.ok, false)
  if (!v.ok) assert.is(v.check, 'operatorSignature')
})

// the smallest proof the attribution layer's schema accepts: provenance only, no spans
const proof = {
  v: 1,
  method: 'provenance',
  outputHash: hashTokenIds(outputIds),
  outputTokens: outputIds.length,
  minSpanTokens: 8,
  datanets: [{ id: sha256Hex('dn'), version: 1, root: sha256Hex('root'), bp: 10_000 }],
  contributors: [],
  spans: []
}

test('a proof that came with the receipt must hash to its proofHash', async () => {
  const r = await signed({
    attribution: {
      method: 'provenance',
      datanets: [],
      contributors: [],
      proofHash: sha256Hex(encodeCanonical(proof))
    }
  })
  assert.ok((await verifyReceipt(r, { attributionProof: proof })).ok)
  const v = await verifyReceipt(r, { attributionProof: { ...proof, outputTokens: 4 } })
  assert.is(v.ok, false)
  if (!v.ok) {
    assert.is(v.check, 'expected')
    assert.is(v.field, 'attribution.proofHash')
  }
})

test('a result frame carries the proof through the codec; a malformed one is named', async () => {
  const r = await signed()
  const result: ResponseFrame = {
    t: 'result',
    jobId: r.body.jobId,
    finishReason: 'stop',
    text: 'hi',
    promptIds,
    usage: { promptTokens: promptIds.length, outputTokens: outputIds.length },
    timings: { queuedMs: 0, firstTokenMs: 1, totalMs: 2 },
    receipt: r
  }
  assert.equal(decodeResponseFrame(encodeFrame({ ...result, attributionProof: proof as never })), {
    ...result,
    attributionProof: proof
  })
  assert.equal(decodeResponseFrame(encodeFrame(result)), result, 'absent when not sent')
  assert.throws(
    () =>
      decodeResponseFrame(encodeFrame({ ...result, attributionProof: { ...proof, spans: 'x' } as never })),
    /result\.attributionProof/
  )
})

test('schema errors name the field', async () => {
  const r = (await signed()) as unknown as { body: Record<string, unknown> }
  r.body.promptTokens = -1
  const v = await verifyReceipt(r)
  assert.is(v.ok, false)
  if (!v.ok) {
    assert.is(v.check, 'schema')
    assert.is(v.field, 'body.promptTokens')
  }
  assert.throws(() => parseReceipt({ ...r, extra: 1 }), /unknown field/)
})

test('attribution shares must sum to 10000 basis points', async () => {
  const r = await signed({
    attribution: {
      method: 'spans',
      datanets: [{ id: sha256Hex('d'), bp: 5000 }],
      contributors: [],
      proofHash: sha256Hex('p')
    }
  })
  const v = await verifyReceipt(r)
  assert.is(v.ok, false)
  if (!v.ok) assert.is(v.field, 'attribution.datanets')
})

test('a receipt for another chain domain is refused when the verifier names its domain', async () => {
  const r = await signed()
  const v = await verifyReceipt(r, { domain: { chainId: 161201, verifyingContract: ZERO_ADDRESS } })
  assert.is(v.ok, false)
  if (!v.ok) assert.is(v.field, 'eip712')
})

test.run()
