// The payment terms an error frame carries (errors.ts and codec.ts both need them).
import { anyAddress, decimalString, hexBytes, z } from '../../common/schema.ts'

export const PAYMENT_REASONS = [
  'VOUCHER_MISSING',
  'MALFORMED_VOUCHER',
  'BAD_SIGNATURE',
  'WRONG_CHANNEL',
  'NOT_INCREASING',
  'UNDERPAID',
  'INSUFFICIENT_ESCROW',
  'WITHDRAWAL_PENDING',
  'JOB_REPLAYED',
  'UNKNOWN_ADAPTER',
  'TERMS_MISMATCH'
] as const

/**
 * The serving node's terms, sent with PAYMENT_REQUIRED so a client can sign the voucher and
 * resend (like HTTP 402): the operator the voucher must name, the price, the worst-case amount
 * this job needs on top of what the channel owes, and the EIP-712 domain of the vouchers.
 */
export const PaymentTermsSchema = z.strictObject({
  /** why the job was refused: no voucher, or the chain layer's rejection code */
  reason: z.enum(PAYMENT_REASONS),
  operator: anyAddress,
  pricePer1kTokens: decimalString,
  maxAmountDue: decimalString,
  chainId: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  settlement: anyAddress,
  /** the refused request's job id: the signature covers it, so old terms cannot be replayed */
  jobId: hexBytes(16).optional(),
  /** EIP-712 `Terms` by `operator` in the Settlement domain (chain/eip712.ts): a relay that
   * changes a field breaks it (H4). Optional on the wire so a node before H4 still decodes; the
   * client pays no terms without it */
  signature: hexBytes(65).optional()
})
export type PaymentTerms = z.output<typeof PaymentTermsSchema>

/**
 * The terms the client accepted, in the request body it signs (H4): the node serves a paid job
 * only when they are its own, and charges exactly this price. The adapter and maxNewTokens are
 * in the body already, and the voucher names the operator and adapter under the client's
 * wallet signature; the price is the term nothing else the client signs carries.
 */
export const AcceptedTermsSchema = z.strictObject({
  operator: anyAddress,
  pricePer1kTokens: decimalString
})
export type AcceptedTerms = z.output<typeof AcceptedTermsSchema>
