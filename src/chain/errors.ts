// Named errors of the chain layer. Voucher rejections carry a code from a closed union so the
// protocol layer can send them over the wire unchanged.
import { BaseError, ContractFunctionRevertedError } from 'viem'
import { OpenLoraError } from '../common/errors.ts'
import { redactUrl, redactUrls } from '../common/redact.ts'

export { redactUrl, redactUrls }

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

/** The decoded custom error (viem ContractFunctionRevertedError) in a viem error's cause chain. */
function revertedError(err: unknown): ContractFunctionRevertedError | undefined {
  if (!(err instanceof BaseError)) return undefined
  const found = err.walk((e) => e instanceof ContractFunctionRevertedError)
  return found instanceof ContractFunctionRevertedError ? found : undefined
}

/** The custom error a contract reverted with (e.g. 'NotIncreasing'), when there was one. */
export function revertName(err: unknown): string | undefined {
  return revertedError(err)?.data?.errorName
}

/** The decoded arguments of the custom error, when there was one. */
export function revertArgs(err: unknown): readonly unknown[] | undefined {
  return revertedError(err)?.data?.args
}
