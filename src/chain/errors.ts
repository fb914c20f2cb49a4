// Named errors of the chain layer. Voucher rejections carry a code from a closed union so the
// protocol layer can send them over the wire unchanged.
import { OpenLoraError } from '../common/errors.ts'

export type VoucherRejection =
  | 'MALFORMED_VOUCHER'
  | 'BAD_SIGNATURE'
  | 'WRONG_CHANNEL'
  | 'NOT_INCREASING'
  | 'UNDERPAID'
  | 'INSUFFICIENT_ESCROW'
  | 'WITHDRAWAL_PENDING'
  | 'JOB_REPLAYED'
  | 'UNKNOWN_ADAPTER'

export class VoucherRejectedError extends OpenLoraError<VoucherRejection> {}

export class ChainConfigError extends OpenLoraError<'CHAIN_CONFIG'> {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('CHAIN_CONFIG', message, data)
  }
}

/**
 * An RPC URL as it may appear in errors and logs: scheme, host and port only. Hosted RPC URLs carry
 * the API key in the path, the query or the user info (L4, docs/THREATS.md).
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    const hidden = u.pathname.length > 1 || u.search !== '' || u.username !== '' || u.password !== ''
    return `${u.protocol}//${u.host}${hidden ? '/…' : ''}`
  } catch {
    return '(an RPC URL)'
  }
}

const URL_RE = /\b(?:https?|wss?):\/\/[^\s"'<>)]+/g

/** Replaces every URL in a text by its redacted form. */
export function redactUrls(text: string): string {
  return text.replace(URL_RE, (m) => redactUrl(m))
}

/** Redacts URLs in the string fields of an error and its causes (viem puts the RPC URL there). */
function scrubUrls(err: unknown): void {
  const seen = new Set<unknown>()
  let e = err as Record<string, unknown> | undefined
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e)
    for (const k of ['message', 'shortMessage', 'details', 'url', 'stack']) {
      const v = e[k]
      if (typeof v === 'string') {
        try {
          e[k] = redactUrls(v)
        } catch {}
      }
    }
    if (Array.isArray(e.metaMessages))
      e.metaMessages = e.metaMessages.map((m) => (typeof m === 'string' ? redactUrls(m) : m))
    e = e.cause as Record<string, unknown> | undefined
  }
}

/** A chain call failed; `cause` is the viem error (its shortMessage says what the node or contract said). */
export class ChainCallError extends OpenLoraError<'CHAIN_CALL'> {
  constructor(action: string, cause: unknown, data: Record<string, unknown> = {}) {
    // never an RPC URL (and its API key) in a message, a log line or a serialized cause
    scrubUrls(cause)
    const short =
      (cause as { shortMessage?: string })?.shortMessage ?? (cause as Error)?.message ?? String(cause)
    super(
      'CHAIN_CALL',
      `${action} failed: ${short}`,
      { action, ...data, revert: revertName(cause) },
      { cause }
    )
  }

  /** The custom error the contract reverted with (e.g. 'NotIncreasing'), when there was one. */
  get revert(): string | undefined {
    return this.data.revert as string | undefined
  }
}

export class LocalChainError extends OpenLoraError<'LOCAL_CHAIN'> {
  constructor(message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('LOCAL_CHAIN', message, data, options)
  }
}

/** Finds a decoded custom error (viem ContractFunctionRevertedError) anywhere in a cause chain. */
export function revertName(err: unknown): string | undefined {
  const seen = new Set<unknown>()
  let e = err as { data?: { errorName?: string }; cause?: unknown; walk?: unknown } | undefined
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e)
    if (e.data && typeof e.data === 'object' && typeof e.data.errorName === 'string') return e.data.errorName
    e = e.cause as typeof e
  }
  return undefined
}

/** The decoded arguments of the custom error, when there was one. */
export function revertArgs(err: unknown): readonly unknown[] | undefined {
  const seen = new Set<unknown>()
  let e = err as { data?: { errorName?: string; args?: readonly unknown[] }; cause?: unknown } | undefined
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e)
    if (e.data && typeof e.data === 'object' && typeof e.data.errorName === 'string') return e.data.args
    e = e.cause as typeof e
  }
  return undefined
}
