// The node's check of a voucher before it serves a paid job: well formed, for this node and
// adapter, signed by the client for this chain and contract, not below the channel's latest
// voucher, a signed maximum that covers what the channel owes plus the job's worst case, and an
// escrow that covers what this node will claim from the client (owed, unclaimed) with this job.
// This is the quick refusal, before the lock; VoucherStore.reserve decides under it.
import { type Address, getAddress, type Hex } from 'viem'
import { channelKey } from './channel.ts'
import type { ChainClient } from './client.ts'
import { type SignedVoucher, verifyVoucherSignature } from './eip712.ts'
import { VoucherRejectedError } from './errors.ts'
import { assertIncreasing, assertNoWithdrawal } from './payment-rules.ts'
import type { VoucherStore } from './store.ts'
import type { ReserveChainState } from './store-records.ts'

export { channelKey }

export interface VoucherCheckInput {
  voucher: SignedVoucher
  /** this node's operator address */
  node: Address
  /** the adapter the job runs (bytes32 id; zero for the base model) */
  adapterId: Hex
  /** the most this job can cost: price × (prompt tokens + maxNewTokens), per docs/INTERFACES.md */
  maxAmountDue: bigint
}

export interface VoucherCheckResult {
  channel: Hex
  /** the channel's latest voucher (or on-chain claimed amount) before this one */
  previous: bigint
  /** what the client owes on this channel for jobs already served */
  owed: bigint
  /** how much this voucher raises the channel's signed maximum */
  increase: bigint
  /** the client's escrow at this node */
  escrowBalance: bigint
  /** what the chain has paid on the channel */
  onChainClaimed: bigint
}

/**
 * Throws VoucherRejectedError (code BAD_SIGNATURE, WRONG_CHANNEL, NOT_INCREASING, UNDERPAID,
 * INSUFFICIENT_ESCROW or WITHDRAWAL_PENDING) or returns what the voucher adds.
 */
export async function checkVoucher(
  chain: ChainClient,
  store: VoucherStore,
  input: VoucherCheckInput
): Promise<VoucherCheckResult> {
  const v = input.voucher
  if (getAddress(v.node) !== getAddress(input.node))
    throw new VoucherRejectedError(
      'WRONG_CHANNEL',
      `voucher is for node ${v.node}, this node is ${input.node}`
    )
  if (v.adapterId.toLowerCase() !== input.adapterId.toLowerCase())
    throw new VoucherRejectedError(
      'WRONG_CHANNEL',
      `voucher is for adapter ${v.adapterId}, the job runs ${input.adapterId}`
    )
  if (!(await verifyVoucherSignature(chain.domain, v)))
    throw new VoucherRejectedError(
      'BAD_SIGNATURE',
      `voucher signature is not the client's for chain ${chain.domain.chainId} and settlement ${chain.domain.settlement}`
    )
  const channel = channelKey(v.client, v.node, v.adapterId)
  // both at one block (a claim mined between two reads would pair an old escrow with a new claimed
  // amount); VoucherStore.reserve checks again under the client's lock before the job is served
  const [stored, state] = await Promise.all([
    store.getChannel(channel),
    chain.channelState(v.client, v.node, v.adapterId)
  ])
  const onChain = state.claimed
  const escrow = state.escrow
  const storedLatest = stored ? BigInt(stored.latest.cumulativeAmount) : 0n
  const previous = storedLatest > onChain ? storedLatest : onChain
  assertIncreasing(v.cumulativeAmount, previous)
  // a channel this node has no record of (a fresh data dir) counts what the chain paid as owed
  const owed = stored ? BigInt(stored.owed ?? '0') : onChain
  const needed = owed + input.maxAmountDue
  if (v.cumulativeAmount < needed)
    throw new VoucherRejectedError(
      'UNDERPAID',
      `cumulativeAmount ${v.cumulativeAmount} must cover ${owed} owed plus up to ${input.maxAmountDue} for this job`,
      { needed: needed.toString() }
    )
  const increase = v.cumulativeAmount - previous
  assertNoWithdrawal(escrow.unlockAt)
  // what the chain paid on this channel is no longer exposure, whatever the store last saw
  if (stored && onChain > BigInt(stored.claimed)) await store.setClaimed(channel, onChain)
  // what this node will claim from the client: owed and not yet paid on all its channels, plus
  // this job's worst case (the margin a voucher signs beyond that is never claimed)
  const exposure =
    (await store.unclaimedFromClient(v.client)) + store.reservedFromClient(v.client) + input.maxAmountDue
  if (exposure > escrow.balance)
    throw new VoucherRejectedError(
      'INSUFFICIENT_ESCROW',
      `escrow ${escrow.balance} wei does not cover ${exposure} wei this node is owed unclaimed with this job's worst case`,
      { balance: escrow.balance.toString(), needed: exposure.toString() }
    )
  return { channel, previous, owed, increase, escrowBalance: escrow.balance, onChainClaimed: onChain }
}

/**
 * What VoucherStore.reserve reads under the client's lock: the channel's claimed amount and the
 * client's escrow at this node, both at the latest block (one block, so they agree).
 */
export function chainStateReader(chain: ChainClient, v: SignedVoucher): () => Promise<ReserveChainState> {
  return async () => {
    const s = await chain.channelState(v.client, v.node, v.adapterId)
    return { onChainClaimed: s.claimed, escrow: s.escrow.balance, unlockAt: s.escrow.unlockAt }
  }
}
