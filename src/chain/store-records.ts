// The records the VoucherStore keeps (channels, receipts, jobs in flight, pools, claims) and the
// helpers that build and read them: types only and pure functions, so readers of the store need
// not load it.
import type { AbstractLevel } from 'abstract-level'
import { type Address, getAddress, type Hex } from 'viem'
import { type SignedVoucher, type VoucherJson, voucherToJson } from './eip712.ts'

/** Any level instance or sublevel (the node's LevelDB, a sublevel of it, a test's own). */
// biome-ignore lint/suspicious/noExplicitAny: keys are strings, the rest is up to the owner
export type AnyLevel = AbstractLevel<any, string, any>

export interface JobAttribution {
  datanets: { id: Hex; bp: number }[]
  contributors: { address: Address; bp: number }[]
}

export interface PaymentReceipt {
  jobId: Hex
  amountDue: bigint
  attribution?: JobAttribution
  /** the signed receipt as sent to the client (opaque here) */
  receipt?: unknown
  /** its EIP-712 digest (what the client verified): binds the pools planned from it (H5) */
  digest?: Hex
}

export interface ChannelRecord {
  channel: Hex
  client: Address
  node: Address
  adapterId: Hex
  /** the client's latest voucher: the most the channel may be paid in total */
  latest: VoucherJson
  /** cumulative amount the chain has paid on this channel, as last seen */
  claimed: string
  /** sum of amountDue of the jobs recorded on this channel: the total the node claims */
  owed?: string
  /** set when the chain refuses the voucher for a reason retrying cannot fix */
  quarantined?: string
  updatedAt: number
}

export interface ReceiptRecord {
  jobId: Hex
  amountDue: string
  /** the channel's owed total with this job: a claim up to `amount` pays the receipts ≤ it */
  owed: string
  /** the signed maximum of the voucher the job came with */
  cumulativeAmount: string
  attribution?: JobAttribution
  receipt?: unknown
  /** the receipt's EIP-712 digest (H5) */
  digest?: Hex
  /** a job that ended before `done` (abort, crash, timeout): paid for what it delivered */
  partial?: { delivered: number }
}

/** One adapter run's part of a pool (H5): its budget and the receipts the shares came from. */
export interface PoolRun {
  adapterId: Hex
  budget: string
  /** each receipt's digest, and the signed receipt itself where the node has it */
  receipts: { digest: Hex; receipt?: unknown }[]
}

export interface PoolRecord {
  root: Hex
  datanetId: Hex
  total: string
  leaves: { account: Address; amount: string }[]
  /** what the tree's root is bound to (src/chain/merkle.ts); absent in pools planned before H5 */
  binding?: Hex
  runs?: PoolRun[]
  /** set once the claim that funded it is seen on-chain */
  poolId?: string
  createdAt: number
}

export interface ClaimRecord {
  txHash: Hex
  /** cumulativeAmount: the voucher's signed maximum; amount: the channel total claimed (≤ it) */
  vouchers: { channel: Hex; adapterId: Hex; cumulativeAmount: string; amount: string; increase: string }[]
  total: string
  gasUsed: string
  at: number
}

/**
 * A paid job between its voucher check and its end: its worst case is reserved against the
 * channel and the client's escrow, and `delivered` counts the tokens sent so far (written before
 * each token goes out), so an abort, a crash or a timeout still leaves a claim for them.
 */
export interface InflightRecord {
  channel: Hex
  client: Address
  jobId: Hex
  voucher: VoucherJson
  promptTokens: number
  delivered: number
  pricePer1kTokens: string
  /** the job's worst case (prompt + maxNewTokens at the price): what is reserved */
  maxAmountDue: string
  startedAt: number
}

/** What the chain says about a channel when a job is reserved (read at one block). */
export interface ReserveChainState {
  /** what the contract has paid on the channel */
  onChainClaimed: bigint
  /** the client's escrow balance at this node */
  escrow: bigint
  /** the escrow's pending withdrawal time (0: none); absent: not read */
  unlockAt?: bigint
}

export interface ReserveInput {
  jobId: Hex
  maxAmountDue: bigint
  promptTokens: number
  pricePer1kTokens: bigint
}

/** owed − claimed: never negative (a fresh store may have seen the chain pay more than it knows) */
export function unclaimedOf(r: ChannelRecord): bigint {
  const d = BigInt(r.owed ?? '0') - BigInt(r.claimed)
  return d > 0n ? d : 0n
}

/** zero-padded so that string order of keys is numeric order of amounts */
export function padAmount(n: bigint): string {
  return n.toString().padStart(78, '0')
}

/**
 * A receipt as the store keeps it: `owed` is the channel's total with this job (the key a claim's
 * range reads), and a job that ended without its signed receipt is marked `partial`.
 */
export function receiptRecord(
  jobId: Hex,
  due: bigint,
  owed: bigint,
  cumulativeAmount: string,
  paid: Omit<PaymentReceipt, 'jobId' | 'amountDue'> | undefined,
  partial?: { delivered: number }
): ReceiptRecord {
  return {
    jobId,
    amountDue: due.toString(),
    owed: owed.toString(),
    cumulativeAmount,
    ...(paid?.attribution ? { attribution: paid.attribution } : {}),
    ...(paid?.digest ? { digest: paid.digest } : {}),
    ...(paid?.receipt !== undefined ? { receipt: paid.receipt } : partial ? { partial } : {})
  }
}

/**
 * A channel's record after a voucher was accepted on it: the voucher becomes the latest, `owed` the
 * new total; `kept` carries over what the chain has paid and a quarantine, where the caller keeps them.
 */
export function channelRecord(
  channel: Hex,
  voucher: SignedVoucher,
  owed: bigint,
  kept: { claimed?: string; quarantined?: string } = {}
): ChannelRecord {
  return {
    channel,
    client: getAddress(voucher.client),
    node: getAddress(voucher.node),
    adapterId: voucher.adapterId,
    latest: voucherToJson(voucher),
    claimed: kept.claimed ?? '0',
    owed: owed.toString(),
    ...(kept.quarantined ? { quarantined: kept.quarantined } : {}),
    updatedAt: Date.now()
  }
}
