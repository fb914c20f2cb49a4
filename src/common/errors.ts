import type { ErrorCode } from './error-codes.ts'

// Errors that cross a module boundary carry a stable `name` (tests check it) and, where they may
// cross the wire or a process, a `code` from a closed union plus structured `data` (Lodestar
// style). The message says what was wrong and what is allowed.
export class OpenLoraError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C
  readonly data: Record<string, unknown>

  constructor(code: C, message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.data = data
  }
}

export class InvalidParametersError extends OpenLoraError<'INVALID_PARAMETERS'> {
  constructor(message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('INVALID_PARAMETERS', message, data, options)
  }
}

/** Thrown where a feature is named but not built, so the user sees it plainly. */
export class NotSupportedError extends OpenLoraError<'NOT_SUPPORTED'> {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('NOT_SUPPORTED', message, data)
  }
}

/** The registered code of an error, or undefined for anything that is not an OpenLoraError. */
export function codeOf(err: unknown): ErrorCode | undefined {
  return err instanceof OpenLoraError ? err.code : undefined
}

/** True when `err` is an OpenLoraError carrying one of `codes`: how callers tell errors apart. */
export function hasCode(err: unknown, ...codes: ErrorCode[]): boolean {
  const c = codeOf(err)
  return c !== undefined && codes.includes(c)
}

/**
 * The `code` a foreign error carries by its library's documented contract: Node's system errors
 * (ENOENT, ECONNREFUSED), abstract-level's LEVEL_LOCKED. These are not ours to register; this is
 * the one place that reads them, and only as a string code, never from the message.
 */
export function foreignCode(err: unknown): string | undefined {
  if (!(err instanceof Error) || !('code' in err)) return undefined
  return typeof err.code === 'string' ? err.code : undefined
}
