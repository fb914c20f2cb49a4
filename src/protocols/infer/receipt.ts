// Receipts (docs/INTERFACES.md): the serving node's signed statement of what ran, on what, what
// came out and what it costs. One canonical body, signed twice: with the libp2p peer key
// (Ed25519 over deterministic CBOR) so any peer can check it without a chain, and with the
// operator key as EIP-712 typed data so the settlement contract can check it on-chain.
// `verifyReceipt` runs every check in a fixed order and names the first one that fails.
import { peerIdFromString } from '@libp2p/peer-id'
import { type Address, hashTypedData, type LocalAccount, recoverTypedDataAddress } from 'viem'
import { RECEIPT_TYPES, receiptDomain } from '../../chain/eip712.ts'
import {
  anyAddress,
  decimalString,
  hexBytes,
  parseWith,
  SchemaError,
  uint,
  uint32,
  z
} from '../../common/schema.ts'
import { encodeCanonical } from '../../crypto/cbor.ts'
import { cidDigest, cidString } from '../../crypto/cid.ts'
import { fromHex, type Hex, hashTokenIds, sha256Hex, toHex } from '../../crypto/hash.ts'
import {
  MAX_CID_CHARS,
  MAX_MODEL_ID_CHARS,
  MAX_PEER_ID_CHARS,
  RECEIPT_SIGNATURE_DOMAIN
} from './constants.ts'

const MAX_ATTRIBUTION_ENTRIES = 256
const MAX_TIME_MS = 2 ** 53 - 1
const Bp = z.int().min(0).max(10_000)

export const AttributionSchema = z.strictObject({
  method: z.enum(['provenance', 'spans']),
  datanets: z.array(z.strictObject({ id: hexBytes(32), bp: Bp })).max(MAX_ATTRIBUTION_ENTRIES),
  contributors: z.array(z.strictObject({ address: anyAddress, bp: Bp })).max(MAX_ATTRIBUTION_ENTRIES),
  proofHash: hexBytes(32)
})
export type Attribution = z.output<typeof AttributionSchema>

export const ReceiptBodySchema = z.strictObject({
  v: z.literal(1),
  jobId: hexBytes(16),
  peerId: z.string().min(1).max(MAX_PEER_ID_CHARS),
  operator: anyAddress,
  modelId: z.string().min(1).max(MAX_MODEL_ID_CHARS),
  modelHash: hexBytes(32),
  adapter: cidString(MAX_CID_CHARS).nullable(),
  inputHash: hexBytes(32),
  outputHash: hexBytes(32),
  promptTokens: uint32,
  outputTokens: uint32,
  pricePer1kTokens: decimalString,
  amountDue: decimalString,
  attribution: AttributionSchema,
  voucher: hexBytes(32).nullable(),
  startedAt: uint(MAX_TIME_MS),
  finishedAt: uint(MAX_TIME_MS)
})
export type ReceiptBody = z.output<typeof ReceiptBodySchema>

/** The EIP-712 domain's chain part; chainId 0 and the zero address when the node runs without a chain. */
export const ReceiptDomainSchema = z.strictObject({
  chainId: uint(MAX_TIME_MS),
  verifyingContract: anyAddress
})
export type ReceiptDomain = z.output<typeof ReceiptDomainSchema>

/** What travels in the `result` frame and what `openlora verify FILE` reads (JSON-safe). */
export const ReceiptSchema = z.strictObject({
  body: ReceiptBodySchema,
  eip712: ReceiptDomainSchema,
  peerSignature: hexBytes(64),
  operatorSignature: hexBytes(65)
})
export type Receipt = z.output<typeof ReceiptSchema>

export const ZERO_ADDRESS: Address = '0x0000000000000000000000000000000000000000'
export const ZERO_BYTES32: Hex = `0x${'00'.repeat(32)}`
/** Body fields the operator's EIP-712 signature covers (directly or through a hash). */
const EIP712_FIELDS = [
  'jobId',
  'operator',
  'modelHash',
  'adapter',
  'inputHash',
  'outputHash',
  'promptTokens',
  'outputTokens',
  'amountDue',
  'attribution',
  'finishedAt'
]
const PEER_ONLY_FIELDS = ['v', 'peerId', 'modelId', 'pricePer1kTokens', 'voucher', 'startedAt']

export function amountDueFor(promptTokens: number, outputTokens: number, pricePer1kTokens: string): string {
  const total = BigInt(promptTokens + outputTokens) * BigInt(pricePer1kTokens)
  return ((total + 999n) / 1000n).toString()
}

export function attributionHash(a: Attribution): Hex {
  return sha256Hex(encodeCanonical(a))
}

/** jobId is 16 bytes; on chain it is bytes32, left-aligned and zero padded. */
export function jobIdToBytes32(jobId: Hex): Hex {
  return `${jobId}${'0'.repeat(64 - (jobId.length - 2))}` as Hex
}

export function adapterIdOf(adapter: string | null): Hex {
  return adapter === null ? ZERO_BYTES32 : toHex(cidDigest(adapter))
}

/** The typed data the operator signs; types and domain come from src/chain/eip712.ts (one place). */
export function receiptTypedData(body: ReceiptBody, domain: ReceiptDomain) {
  return {
    domain: receiptDomain({ chainId: domain.chainId, settlement: domain.verifyingContract }),
    types: RECEIPT_TYPES,
    primaryType: 'Receipt' as const,
    message: {
      jobId: jobIdToBytes32(body.jobId),
      operator: body.operator,
      modelHash: body.modelHash,
      adapterId: adapterIdOf(body.adapter),
      inputHash: body.inputHash,
      outputHash: body.outputHash,
      promptTokens: body.promptTokens,
      outputTokens: body.outputTokens,
      amountDue: BigInt(body.amountDue),
      attributionHash: attributionHash(body.attribution),
      finishedAt: BigInt(body.finishedAt)
    }
  }
}

/** The EIP-712 digest the settlement contract recomputes. */
export function receiptDigest(body: ReceiptBody, domain: ReceiptDomain): Hex {
  return hashTypedData(receiptTypedData(body, domain))
}

export function peerSigningBytes(body: ReceiptBody): Uint8Array {
  return encodeCanonical({ domain: RECEIPT_SIGNATURE_DOMAIN, body })
}

/** The part of a viem account that signs receipts (any LocalAccount fits, typed data generic as viem's). */
export type OperatorSigner = Pick<LocalAccount, 'address' | 'signTypedData'>

export interface ReceiptSigner {
  peerId: string
  /** Ed25519 signature with the node's libp2p key (libp2p `privateKey.sign`) */
  signPeer(data: Uint8Array): Uint8Array | Promise<Uint8Array>
  /** the operator account: signs the receipt as EIP-712 typed data */
  operator: OperatorSigner
  domain: ReceiptDomain
}

export async function signReceipt(body: ReceiptBody, signer: ReceiptSigner): Promise<Receipt> {
  const peerSignature = toHex(await signer.signPeer(peerSigningBytes(body)))
  const operatorSignature = await signer.operator.signTypedData(receiptTypedData(body, signer.domain))
  return { body, eip712: { ...signer.domain }, peerSignature, operatorSignature }
}

/** Schema check of a decoded receipt (from the wire or a JSON file); throws SchemaError naming the field. */
export function parseReceipt(v: unknown): Receipt {
  return parseWith(ReceiptSchema, v)
}

/** What the verifier saw itself; each given value is compared with the receipt's field. */
export interface ReceiptExpectations {
  jobId?: Hex
  peerId?: string
  operator?: Address
  modelId?: string
  modelHash?: Hex
  adapter?: string | null
  promptIds?: readonly number[]
  outputIds?: readonly number[]
  pricePer1kTokens?: string
  domain?: ReceiptDomain
  /** a full attribution proof that came with the receipt: it must hash to attribution.proofHash */
  attributionProof?: unknown
}

export type ReceiptCheck = 'schema' | 'consistency' | 'expected' | 'peerSignature' | 'operatorSignature'

export type ReceiptVerification =
  | { ok: true; receipt: Receipt }
  | { ok: false; check: ReceiptCheck; field: string; message: string }

const fail = (check: ReceiptCheck, field: string, message: string): ReceiptVerification => ({
  ok: false,
  check,
  field,
  message
})

/**
 * Checks, in order: schema, internal consistency (amount, attribution shares, times),
 * what the caller saw (token hashes and counts, job id, serving peer…), the Ed25519 peer
 * signature, the EIP-712 operator signature. Returns the first failure with the field it concerns.
 */
export async function verifyReceipt(
  input: unknown,
  expect: ReceiptExpectations = {}
): Promise<ReceiptVerification> {
  let r: Receipt
  try {
    r = parseReceipt(input)
  } catch (err) {
    if (err instanceof SchemaError) return fail('schema', err.field, err.message)
    throw err
  }
  const b = r.body
  const due = amountDueFor(b.promptTokens, b.outputTokens, b.pricePer1kTokens)
  if (due !== b.amountDue)
    return fail(
      'consistency',
      'amountDue',
      `amountDue ${b.amountDue} != ceil(tokens × price / 1000) = ${due}`
    )
  for (const list of ['datanets', 'contributors'] as const) {
    const entries = b.attribution[list]
    const sum = entries.reduce((s, e) => s + e.bp, 0)
    if (entries.length > 0 && sum !== 10_000)
      return fail('consistency', `attribution.${list}`, `basis points sum to ${sum}, must be 10000`)
  }
  if (b.finishedAt < b.startedAt) return fail('consistency', 'finishedAt', 'finishedAt is before startedAt')

  const eq = (field: keyof ReceiptBody, want: unknown): ReceiptVerification | null =>
    want !== undefined && b[field] !== want
      ? fail('expected', field, `${field} is ${String(b[field])}, expected ${String(want)}`)
      : null
  const mismatch =
    eq('jobId', expect.jobId) ??
    eq('peerId', expect.peerId) ??
    eq('operator', expect.operator) ??
    eq('modelId', expect.modelId) ??
    eq('modelHash', expect.modelHash) ??
    eq('adapter', expect.adapter) ??
    eq('pricePer1kTokens', expect.pricePer1kTokens) ??
    (expect.promptIds ? eq('promptTokens', expect.promptIds.length) : null) ??
    (expect.promptIds ? eq('inputHash', hashTokenIds(expect.promptIds)) : null) ??
    (expect.outputIds ? eq('outputTokens', expect.outputIds.length) : null) ??
    (expect.outputIds ? eq('outputHash', hashTokenIds(expect.outputIds)) : null)
  if (mismatch) return mismatch
  if (expect.attributionProof !== undefined) {
    let got: Hex | undefined
    try {
      got = sha256Hex(encodeCanonical(expect.attributionProof))
    } catch {}
    if (got !== b.attribution.proofHash)
      return fail(
        'expected',
        'attribution.proofHash',
        `the attribution proof that came with the receipt hashes to ${got ?? '(not encodable)'}, the receipt commits to ${b.attribution.proofHash}`
      )
  }
  if (
    expect.domain &&
    (expect.domain.chainId !== r.eip712.chainId ||
      expect.domain.verifyingContract.toLowerCase() !== r.eip712.verifyingContract.toLowerCase())
  )
    return fail('expected', 'eip712', 'receipt was signed for another chain or settlement contract')

  let operatorOk = false
  try {
    const recovered = await recoverTypedDataAddress({
      ...receiptTypedData(b, r.eip712),
      signature: r.operatorSignature
    })
    operatorOk = recovered.toLowerCase() === b.operator.toLowerCase()
  } catch {
    operatorOk = false
  }

  let peerOk = false
  try {
    const pub = peerIdFromString(b.peerId).publicKey
    if (pub == null || pub.type !== 'Ed25519')
      return fail('peerSignature', 'peerId', 'peerId does not embed an Ed25519 public key')
    peerOk = await pub.verify(peerSigningBytes(b), fromHex(r.peerSignature))
  } catch (err) {
    return fail('peerSignature', 'peerId', `peerId is not a valid peer id: ${(err as Error).message}`)
  }
  if (!peerOk) {
    // The two signatures cover different field sets, so together they narrow down what changed.
    const where = operatorOk
      ? `the operator signature still holds, so one of ${PEER_ONLY_FIELDS.join(', ')} was changed`
      : `one of ${EIP712_FIELDS.join(', ')} was changed, or the receipt was not signed by ${b.peerId}`
    return fail(
      'peerSignature',
      operatorOk ? PEER_ONLY_FIELDS.join('|') : 'body',
      `peer signature invalid: ${where}`
    )
  }
  if (!operatorOk)
    return fail(
      'operatorSignature',
      'operatorSignature',
      `EIP-712 signature does not recover to operator ${b.operator} (or eip712 domain changed)`
    )
  return { ok: true, receipt: r }
}
