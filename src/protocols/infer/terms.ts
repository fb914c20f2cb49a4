// The payment terms an error frame carries (errors.ts and codec.ts both need them).
import { anyAddress, decimalString, z } from '../../common/schema.ts'

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
  'UNKNOWN_ADAPTER'
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
  settlement: anyAddress
})
export type PaymentTerms = z.output<typeof PaymentTermsSchema>
