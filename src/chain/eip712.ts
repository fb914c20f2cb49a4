// EIP-712 typed data for vouchers and receipts (docs/INTERFACES.md): the one place that states
// the signing scheme. Both domains bind the chain id and the Settlement address, so a voucher
// signed for one chain or contract never verifies on another.
import {
  type Address,
  getAddress,
  type Hex,
  hashTypedData,
  type LocalAccount,
  parseSignature,
  recoverTypedDataAddress,
  serializeCompactSignature,
  signatureToCompactSignature,
  zeroAddress
} from 'viem'
import { messageOf, parseWith, z } from '../common/schema.ts'
import { AddressSchema } from './config.ts'
import { VoucherRejectedError } from './errors.ts'

export interface ChainDomain {
  chainId: number
  /** the Settlement contract */
  settlement: Address
}

export const VOUCHER_TYPES = {
  Voucher: [
    { name: 'client', type: 'address' },
    { name: 'node', type: 'address' },
    { name: 'adapterId', type: 'bytes32' },
    { name: 'cumulativeAmount', type: 'uint256' }
  ]
} as const

export const RECEIPT_TYPES = {
  Receipt: [
    { name: 'jobId', type: 'bytes32' },
    { name: 'operator', type: 'address' },
    { name: 'modelHash', type: 'bytes32' },
    { name: 'adapterId', type: 'bytes32' },
    { name: 'inputHash', type: 'bytes32' },
    { name: 'outputHash', type: 'bytes32' },
    { name: 'promptTokens', type: 'uint32' },
    { name: 'outputTokens', type: 'uint32' },
    { name: 'amountDue', type: 'uint256' },
    { name: 'attributionHash', type: 'bytes32' },
    { name: 'finishedAt', type: 'uint64' }
  ]
} as const

/**
 * A node's payment terms for one job (H4), signed by its operator key in the Settlement domain (so
 * chain and contract are bound too): a peer on the route that changes the price, the worst case or
 * the operator breaks the signature, and the client signs no voucher for them.
 */
export const TERMS_TYPES = {
  Terms: [
    { name: 'operator', type: 'address' },
    { name: 'jobId', type: 'bytes32' },
    { name: 'pricePer1kTokens', type: 'uint256' },
    { name: 'maxAmountDue', type: 'uint256' }
  ]
} as const

export interface TermsMessage {
  operator: Address
  /** the refused request's job id, left-aligned in 32 bytes (job ids are 16 bytes) */
  jobId: Hex
  pricePer1kTokens: bigint
  maxAmountDue: bigint
}

export function voucherDomain(d: ChainDomain) {
  return {
    name: 'OpenLoRA Settlement',
    version: '1',
    chainId: d.chainId,
    verifyingContract: d.settlement
  } as const
}

/** chainId 0 and the zero address when the node runs without a chain (docs/INTERFACES.md). */
export function receiptDomain(d: ChainDomain | null) {
  return {
    name: 'OpenLoRA Receipt',
    version: '1',
    chainId: d?.chainId ?? 0,
    verifyingContract: d?.settlement ?? zeroAddress
  } as const
}

export interface Voucher {
  client: Address
  /** the serving node's operator address */
  node: Address
  adapterId: Hex
  cumulativeAmount: bigint
}

export interface SignedVoucher extends Voucher {
  /** 65-byte signature (r, s, v) by the client */
  signature: Hex
}

/** The wire / storage form: amounts as decimal strings. */
export interface VoucherJson {
  client: string
  node: string
  adapterId: string
  cumulativeAmount: string
  signature: string
}

const MAX_UINT256 = (1n << 256n) - 1n
const BYTES32 = /^0x[0-9a-fA-F]{64}$/
const SIG65 = /^0x[0-9a-fA-F]{130}$/
const DECIMAL = /^(0|[1-9][0-9]{0,77})$/

export function voucherHash(d: ChainDomain, v: Voucher): Hex {
  return hashTypedData({ domain: voucherDomain(d), types: VOUCHER_TYPES, primaryType: 'Voucher', message: v })
}

export async function signVoucher(
  client: LocalAccount,
  d: ChainDomain,
  v: Omit<Voucher, 'client'>
): Promise<SignedVoucher> {
  const message: Voucher = { ...v, client: client.address }
  const signature = await client.signTypedData({
    domain: voucherDomain(d),
    types: VOUCHER_TYPES,
    primaryType: 'Voucher',
    message
  })
  return { ...message, signature }
}

export async function recoverVoucherSigner(d: ChainDomain, v: SignedVoucher): Promise<Address> {
  return recoverTypedDataAddress({
    domain: voucherDomain(d),
    types: VOUCHER_TYPES,
    primaryType: 'Voucher',
    message: { client: v.client, node: v.node, adapterId: v.adapterId, cumulativeAmount: v.cumulativeAmount },
    signature: v.signature
  })
}

/** secp256k1 group order n, and n/2: the largest s the contract accepts */
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
const HALF_N = SECP256K1_N >> 1n

/**
 * True for the one signature form the contract takes (OpenZeppelin ECDSA over EIP-2098 (r, vs)):
 * 65 bytes, 0 < r < n, 0 < s ≤ n/2 (low s) and v 27 or 28. Any other form of a valid signature
 * (its high-s twin) recovers in viem but is refused on-chain, so the node refuses it too.
 */
export function isCanonicalSignature(signature: Hex): boolean {
  if (!SIG65.test(signature)) return false
  const r = BigInt(`0x${signature.slice(2, 66)}`)
  const s = BigInt(`0x${signature.slice(66, 130)}`)
  const v = Number.parseInt(signature.slice(130, 132), 16)
  return r > 0n && r < SECP256K1_N && s > 0n && s <= HALF_N && (v === 27 || v === 28)
}

/** True when the client signed this exact voucher for this chain and contract, in the form the
 * contract accepts (isCanonicalSignature). */
export async function verifyVoucherSignature(d: ChainDomain, v: SignedVoucher): Promise<boolean> {
  try {
    if (!isCanonicalSignature(v.signature)) return false
    return (await recoverVoucherSigner(d, v)) === getAddress(v.client)
  } catch {
    return false
  }
}

/** The EIP-2098 compact (r, vs) form that Settlement.claim takes. */
export function compactSignature(signature: Hex): { r: Hex; vs: Hex } {
  const c = signatureToCompactSignature(parseSignature(signature))
  return { r: c.r, vs: c.yParityAndS }
}

export function compactToHex(c: { r: Hex; vs: Hex }): Hex {
  return serializeCompactSignature({ r: c.r, yParityAndS: c.vs })
}

export function voucherToJson(v: SignedVoucher): VoucherJson {
  return {
    client: v.client,
    node: v.node,
    adapterId: v.adapterId,
    cumulativeAmount: v.cumulativeAmount.toString(),
    signature: v.signature
  }
}

/** Schema check for a voucher that came from the network or from disk. */
/** A voucher as it travels (JSON strings); the schema checks and converts every field. */
export const VoucherJsonSchema = z.strictObject({
  client: AddressSchema,
  node: AddressSchema,
  adapterId: z
    .string()
    .regex(BYTES32)
    .describe('0x + 64 hex')
    .transform((h) => h.toLowerCase() as Hex),
  cumulativeAmount: z
    .string()
    .regex(DECIMAL)
    .describe('a decimal string in 1..2^256-1')
    .transform((a) => BigInt(a))
    .refine((a) => a > 0n && a <= MAX_UINT256, { error: 'must be in 1..2^256-1' }),
  signature: z
    .string()
    .regex(SIG65)
    .describe('65 bytes as 0x + 130 hex')
    .transform((h) => h.toLowerCase() as Hex)
})

export function voucherFromJson(x: unknown): SignedVoucher {
  return parseWith(VoucherJsonSchema, x, {
    at: 'voucher',
    error: (i) => new VoucherRejectedError('MALFORMED_VOUCHER', messageOf(i), { field: i.field })
  })
}

export interface ReceiptMessage {
  jobId: Hex
  operator: Address
  modelHash: Hex
  adapterId: Hex
  inputHash: Hex
  outputHash: Hex
  promptTokens: number
  outputTokens: number
  amountDue: bigint
  attributionHash: Hex
  finishedAt: bigint
}

export function receiptHash(d: ChainDomain | null, r: ReceiptMessage): Hex {
  return hashTypedData({ domain: receiptDomain(d), types: RECEIPT_TYPES, primaryType: 'Receipt', message: r })
}

export async function signReceipt(
  operator: LocalAccount,
  d: ChainDomain | null,
  r: ReceiptMessage
): Promise<Hex> {
  return operator.signTypedData({
    domain: receiptDomain(d),
    types: RECEIPT_TYPES,
    primaryType: 'Receipt',
    message: r
  })
}

export async function verifyReceiptSignature(
  d: ChainDomain | null,
  r: ReceiptMessage,
  signature: Hex
): Promise<boolean> {
  try {
    const who = await recoverTypedDataAddress({
      domain: receiptDomain(d),
      types: RECEIPT_TYPES,
      primaryType: 'Receipt',
      message: r,
      signature
    })
    return who === getAddress(r.operator)
  } catch {
    return false
  }
}

/** docs/INTERFACES.md: amountDue = ceil((promptTokens + outputTokens) × pricePer1kTokens / 1000). */
export function amountDue(promptTokens: number, outputTokens: number, pricePer1kTokens: bigint): bigint {
  const n = BigInt(promptTokens + outputTokens) * pricePer1kTokens
  return (n + 999n) / 1000n
}

export async function signTerms(
  operator: Pick<LocalAccount, 'signTypedData'>,
  d: ChainDomain,
  t: TermsMessage
): Promise<Hex> {
  return operator.signTypedData({
    domain: voucherDomain(d),
    types: TERMS_TYPES,
    primaryType: 'Terms',
    message: t
  })
}

/** True when `t.operator` signed these terms for this chain and contract (low-s, as vouchers). */
export async function verifyTermsSignature(
  d: ChainDomain,
  t: TermsMessage,
  signature: Hex
): Promise<boolean> {
  try {
    if (!isCanonicalSignature(signature)) return false
    const who = await recoverTypedDataAddress({
      domain: voucherDomain(d),
      types: TERMS_TYPES,
      primaryType: 'Terms',
      message: t,
      signature
    })
    return who === getAddress(t.operator)
  } catch {
    return false
  }
}

/** A 16-byte job id as the bytes32 the Terms type carries (zero-padded on the right). */
export function termsJobId(jobId: string): Hex {
  return `0x${jobId.slice(2).toLowerCase().padEnd(64, '0')}` as Hex
}
