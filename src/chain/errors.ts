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

/** A chain call failed; `cause` is the viem error (its shortMessage says what the node or contract said). */
export class ChainCallError extends OpenLoraError<'CHAIN_CALL'> {
  constructor(action: string, cause: unknown, data: Record<string, unknown> = {}) {
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
