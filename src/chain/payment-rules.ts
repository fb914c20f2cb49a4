// The rules a voucher must pass before this node serves or records a job, as pure functions of
// the channel's record, what the chain says and what the jobs in flight hold. Both the quick
// refusal (vouchers.ts, before any lock) and the decision under the client's lock
// (VoucherStore.reserve) apply them, so the two agree on every code (docs/THREATS.md H1, C2, L1)
// and the store keeps only its LevelDB bookkeeping (records and keys, store-records.ts).
import { amountDue } from './eip712.ts'
import { VoucherRejectedError } from './errors.ts'
import type { InflightRecord } from './store-records.ts'

/** NOT_INCREASING: a voucher is never below the channel's latest one (cumulative amounts). */
export function assertIncreasing(cumulativeAmount: bigint, previous: bigint): void {
  if (cumulativeAmount < previous)
    throw new VoucherRejectedError(
      'NOT_INCREASING',
      `cumulativeAmount must be at least ${previous}, got ${cumulativeAmount}`,
      { previous: previous.toString() }
    )
}

/** WITHDRAWAL_PENDING: a pending withdrawal could empty the escrow before this node claims. */
export function assertNoWithdrawal(unlockAt: bigint | undefined): void {
  if (unlockAt !== undefined && unlockAt !== 0n)
    throw new VoucherRejectedError(
      'WITHDRAWAL_PENDING',
      'the client has requested a withdrawal of its escrow; deposit again or cancel it'
    )
}

/**
 * UNDERPAID under the lock: the voucher's signed maximum covers what the channel owes, what the
 * other jobs in flight on it reserved and this job's worst case.
 */
export function assertCoversJob(
  cumulativeAmount: bigint,
  owed: bigint,
  reserved: bigint,
  worstCase: bigint
): void {
  const needed = owed + reserved + worstCase
  if (cumulativeAmount < needed)
    throw new VoucherRejectedError(
      'UNDERPAID',
      `cumulativeAmount ${cumulativeAmount} must cover ${owed} owed, ${reserved} reserved by jobs in flight and up to ${worstCase} for this job`,
      { needed: needed.toString(), owed: owed.toString(), reserved: reserved.toString() }
    )
}

/**
 * INSUFFICIENT_ESCROW under the lock: the client's escrow at this node covers what this node may
 * claim from it (owed unclaimed on all its channels, every reservation, this job's worst case).
 */
export function assertEscrowCovers(escrow: bigint, exposure: bigint): void {
  if (exposure > escrow)
    throw new VoucherRejectedError(
      'INSUFFICIENT_ESCROW',
      `escrow ${escrow} wei at this node does not cover ${exposure} wei: owed unclaimed, jobs in flight and this job's worst case`,
      { balance: escrow.toString(), needed: exposure.toString() }
    )
}

/**
 * What a job in flight owes when it ends: the receipt's amountDue when it finished, else its
 * delivered tokens with the prompt at the signed price (nothing when no token went out); never
 * more than its reservation (what the client's voucher covers for this job).
 */
export function settledDue(f: InflightRecord, done?: { amountDue: bigint }): bigint {
  const cap = BigInt(f.maxAmountDue)
  const due =
    done?.amountDue ??
    (f.delivered > 0 ? amountDue(f.promptTokens, f.delivered, BigInt(f.pricePer1kTokens)) : 0n)
  return due > cap ? cap : due
}
