// Errors of the infer protocol. The codes cross the wire in `error` frames, so they are a closed
// union; `retryAfterMs` rides along for BUSY and RATE_LIMITED.
import { INFER_WIRE_CODES, type InferWireCode, isErrorCode, wireCodeOf } from '../../common/error-codes.ts'
import { OpenLoraError } from '../../common/errors.ts'
import type { PaymentTerms } from './terms.ts'

// The wire classes live in the one code registry; a payment refusal's precise code (UNDERPAID,
// INSUFFICIENT_ESCROW, BAD_SIGNATURE, …) starts the message of a PAYMENT_REQUIRED frame.
export const INFER_ERROR_CODES = INFER_WIRE_CODES
export type InferErrorCode = InferWireCode

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
 * Maps anything thrown by the engine, the stores or the stream onto an InferError the client can
 * act on, by the error's registered code (its wire class in src/common/error-codes.ts): bad input
 * is BAD_REQUEST, a full pool is BUSY (retry), an adapter that fails its checks is not servable.
 */
export function toInferError(err: unknown): InferError {
  if (err instanceof InferError) return err
  if (err instanceof OpenLoraError && isErrorCode(err.code)) {
    const code = wireCodeOf(err.code)
    const retryAfterMs = err.data.retryAfterMs ?? (code === 'BUSY' ? 500 : undefined)
    const prefix = code === 'PAYMENT_REQUIRED' && err.code !== code ? `${err.code}: ` : ''
    return new InferError(code, `${prefix}${err.message}`.slice(0, 900), {
      ...(typeof retryAfterMs === 'number' ? { retryAfterMs } : {})
    })
  }
  if (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError'))
    return new InferError('DEADLINE_EXCEEDED', 'the job was cancelled or ran past its deadline')
  const message = err instanceof Error ? err.message : String(err)
  return new InferError('INTERNAL', `internal error: ${message}`.slice(0, 500))
}
