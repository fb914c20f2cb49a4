// Errors of the infer protocol. The codes cross the wire in `error` frames, so they are a closed
// union; `retryAfterMs` rides along for BUSY and RATE_LIMITED.
import { INFER_WIRE_CODES, type InferWireCode, isErrorCode, wireCodeOf } from '../../common/error-codes.ts'
import { OpenLoraError } from '../../common/errors.ts'
import type { PaymentTerms } from './terms.ts'

// The wire classes live in the one code registry; a payment refusal's precise code (UNDERPAID,
// INSUFFICIENT_ESCROW, BAD_SIGNATURE, …) starts the message of a PAYMENT_REQUIRED frame.
export const INFER_ERROR_CODES = INFER_WIRE_CODES
export type InferErrorCode = InferWireCode

/**
 * Codes an InferError may carry beyond the wire classes. On the wire each travels as its class
 * with `CODE: ` before the message (an `error` frame is decoded strictly, so neither a new class
 * nor a new key would reach a client that predates it: it would read a malformed frame); this
 * client restores the code (`inferErrorFromFrame`), an older one sees the class and the message.
 */
export const INFER_PRECISE_CODES = ['PEER_UNREACHABLE'] as const
export type InferPreciseCode = (typeof INFER_PRECISE_CODES)[number]
export type InferFailureCode = InferErrorCode | InferPreciseCode

const isPrecise = (c: string): c is InferPreciseCode => (INFER_PRECISE_CODES as readonly string[]).includes(c)

/** A job failed with a typed code; the same class on the serving node and at the client. */
export class InferError extends OpenLoraError<InferFailureCode> {
  get retryAfterMs(): number | undefined {
    const v = this.data.retryAfterMs
    return typeof v === 'number' ? v : undefined
  }

  /** PAYMENT_REQUIRED: the serving node's terms (codec.ts PaymentTerms), when it sent them */
  get payment(): PaymentTerms | undefined {
    return this.data.payment as PaymentTerms | undefined
  }
}

/** What an `error` frame carries for `e`: its wire class, and a precise code before the message. */
export function toWire(e: InferError): { code: InferErrorCode; message: string } {
  if (!isPrecise(e.code)) return { code: e.code, message: e.message }
  return { code: wireCodeOf(e.code), message: `${e.code}: ${e.message}` }
}

/**
 * The InferError an `error` frame stands for: a precise code that leads the message of its own
 * wire class comes back as that code (message without it); anything else is the class as sent.
 */
export function inferErrorFromFrame(f: {
  code: InferErrorCode
  message: string
  retryAfterMs: number | null
  payment?: PaymentTerms | undefined
}): InferError {
  const data = {
    ...(f.retryAfterMs !== null ? { retryAfterMs: f.retryAfterMs } : {}),
    ...(f.payment ? { payment: f.payment } : {})
  }
  const m = /^([A-Z][A-Z_]*): /.exec(f.message)
  if (m && isPrecise(m[1]!) && wireCodeOf(m[1]) === f.code)
    return new InferError(m[1], f.message.slice(m[0].length), data)
  return new InferError(f.code, f.message, data)
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
    if (isPrecise(err.code)) return new InferError(err.code, err.message.slice(0, 900), err.data)
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
