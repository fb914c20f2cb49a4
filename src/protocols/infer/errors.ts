// Errors of the infer protocol. The codes cross the wire in `error` frames, so they are a closed
// union; `retryAfterMs` rides along for BUSY and RATE_LIMITED.
import { OpenLoraError } from '../../common/errors.ts'
import type { PaymentTerms } from './terms.ts'

export const INFER_ERROR_CODES = [
  'BAD_REQUEST',
  'ADAPTER_NOT_FOUND',
  'MODEL_NOT_FOUND',
  'BUSY',
  'RATE_LIMITED',
  'DEADLINE_EXCEEDED',
  'INTERNAL',
  // added for the chain layer: the voucher is missing or refused (the message starts with the
  // chain's rejection code: UNDERPAID, INSUFFICIENT_ESCROW, BAD_SIGNATURE, …)
  'PAYMENT_REQUIRED'
] as const
export type InferErrorCode = (typeof INFER_ERROR_CODES)[number]

export function isInferErrorCode(v: unknown): v is InferErrorCode {
  return typeof v === 'string' && (INFER_ERROR_CODES as readonly string[]).includes(v)
}

/** A job failed with a typed code; the same class on the serving node and at the client. */
export class InferError extends OpenLoraError<InferErrorCode> {
  get retryAfterMs(): number | undefined {
    const v = this.data.retryAfterMs
    return typeof v === 'number' ? v : undefined
  }

  /** PAYMENT_REQUIRED: the serving node's terms (codec.ts PaymentTerms), when it sent them */
  get payment(): PaymentTerms | undefined {
    return this.data.payment as PaymentTerms | undefined
  }
}

/** The remote peer broke the protocol (malformed, oversized or truncated frame, wrong order). */
export class ProtocolError extends OpenLoraError<'PROTOCOL_ERROR'> {
  constructor(message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('PROTOCOL_ERROR', message, data, options)
  }
}

/**
 * Codes of the engine and adapter store (src/runtime) and what a client sees for them: bad input
 * is BAD_REQUEST, a full pool is BUSY (retry), an adapter that fails its checks is not servable.
 */
const RUNTIME_CODES: Record<string, InferErrorCode> = {
  INVALID_PARAMETERS: 'BAD_REQUEST',
  INVALID_REQUEST: 'BAD_REQUEST',
  LIMIT_EXCEEDED: 'BAD_REQUEST',
  NO_FREE_SLOT: 'BUSY',
  ENGINE_STOPPED: 'BUSY',
  ADAPTER_INVALID: 'ADAPTER_NOT_FOUND',
  ADAPTER_BASE_MISMATCH: 'ADAPTER_NOT_FOUND',
  ADAPTER_RANK_TOO_LARGE: 'ADAPTER_NOT_FOUND',
  ADAPTER_TARGET_UNSUPPORTED: 'ADAPTER_NOT_FOUND',
  ADAPTER_TOO_LARGE: 'ADAPTER_NOT_FOUND',
  ADAPTER_CID_MISMATCH: 'ADAPTER_NOT_FOUND',
  ADAPTER_VERIFY_FAILED: 'ADAPTER_NOT_FOUND',
  MALFORMED_VOUCHER: 'PAYMENT_REQUIRED',
  BAD_SIGNATURE: 'PAYMENT_REQUIRED',
  WRONG_CHANNEL: 'PAYMENT_REQUIRED',
  NOT_INCREASING: 'PAYMENT_REQUIRED',
  UNDERPAID: 'PAYMENT_REQUIRED',
  INSUFFICIENT_ESCROW: 'PAYMENT_REQUIRED',
  WITHDRAWAL_PENDING: 'PAYMENT_REQUIRED',
  JOB_REPLAYED: 'PAYMENT_REQUIRED',
  UNKNOWN_ADAPTER: 'PAYMENT_REQUIRED'
}

/** Maps anything thrown by the engine or the stream onto an InferError the client can act on. */
export function toInferError(err: unknown): InferError {
  if (err instanceof InferError) return err
  const e = err as { code?: unknown; message?: unknown; data?: Record<string, unknown>; name?: unknown }
  const code = isInferErrorCode(e?.code)
    ? e.code
    : typeof e?.code === 'string'
      ? RUNTIME_CODES[e.code]
      : undefined
  if (code !== undefined) {
    const retryAfterMs = e.data?.retryAfterMs ?? (code === 'BUSY' ? 500 : undefined)
    const prefix = code === 'PAYMENT_REQUIRED' && e.code !== code ? `${String(e.code)}: ` : ''
    return new InferError(code, `${prefix}${String(e.message ?? code)}`.slice(0, 900), {
      ...(typeof retryAfterMs === 'number' ? { retryAfterMs } : {})
    })
  }
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError')
    return new InferError('DEADLINE_EXCEEDED', 'the job was cancelled or ran past its deadline')
  return new InferError('INTERNAL', `internal error: ${String(e?.message ?? err)}`.slice(0, 500))
}
