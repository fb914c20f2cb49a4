// Errors of the infer protocol. The codes cross the wire in `error` frames, so they are a closed
// union; `retryAfterMs` rides along for BUSY and RATE_LIMITED.
import { OpenLoraError } from '../../common/errors.ts'

export const INFER_ERROR_CODES = [
  'BAD_REQUEST',
  'ADAPTER_NOT_FOUND',
  'MODEL_NOT_FOUND',
  'BUSY',
  'RATE_LIMITED',
  'DEADLINE_EXCEEDED',
  'INTERNAL'
] as const
export type InferErrorCode = (typeof INFER_ERROR_CODES)[number]

export function isInferErrorCode(v: unknown): v is InferErrorCode {
  return typeof v === 'string' && (INFER_ERROR_CODES as readonly string[]).includes(v)
}

/** A job failed with a typed code; the same class on the serving node and at the client. */
export class InferError extends OpenLoraError<InferErrorCode> {
  get retryAfterMs(): number | undefined {
    const v = this.details.retryAfterMs
    return typeof v === 'number' ? v : undefined
  }
}

/** The remote peer broke the protocol (malformed, oversized or truncated frame, wrong order). */
export class ProtocolError extends OpenLoraError<'PROTOCOL_ERROR'> {
  constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('PROTOCOL_ERROR', message, details, options)
  }
}

/** Maps anything thrown by the engine or the stream onto an InferError the client can act on. */
export function toInferError(err: unknown): InferError {
  if (err instanceof InferError) return err
  const e = err as { code?: unknown; message?: unknown; details?: Record<string, unknown>; name?: unknown }
  if (isInferErrorCode(e?.code)) {
    const retryAfterMs = e.details?.retryAfterMs
    return new InferError(e.code, String(e.message ?? e.code), {
      ...(typeof retryAfterMs === 'number' ? { retryAfterMs } : {})
    })
  }
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError')
    return new InferError('DEADLINE_EXCEEDED', 'the job was cancelled or ran past its deadline')
  return new InferError('INTERNAL', `internal error: ${String(e?.message ?? err)}`.slice(0, 500))
}
