// What the Claimer does with an entry the contract refuses (M2). Settlement.claim settles the valid
// entries of a claim and names each refused one with a reason, so each refusal is a policy about
// money decided on its own: catch up with the chain (already paid), claim what the escrow holds
// now (escrow short), or quarantine (bad signature, unknown adapter). Apart from the claim loop
// because these policies are what the attack tests (docs/THREATS.md M2, C1, stale escrow) pin down.
import type { Address, Hex } from 'viem'
import type { Logger } from '../common/log.ts'
import type { ChainClient, ClaimRejection } from './client.ts'
import type { SignedVoucher } from './eip712.ts'
import type { ChannelRecord, VoucherStore } from './store.ts'

/** What a refusal policy reads and writes: the chain, the node's store, the node's address. */
export interface RefusalContext {
  chain: ChainClient
  store: VoucherStore
  node: Address
  log: Logger
}

/** A refused entry, by reason: catch up with the chain, wait for escrow, or quarantine. */
export async function handleRefused(
  ctx: RefusalContext,
  x: { record: ChannelRecord; voucher: SignedVoucher },
  reason: ClaimRejection
): Promise<void> {
  const { record } = x
  if (reason === 'NotIncreasing')
    await ctx.store.setClaimed(
      record.channel,
      await ctx.chain.claimedOf(record.client, record.node, record.adapterId)
    )
  // AboveSignedMaximum cannot happen for what recordPayment accepted (owed ≤ the voucher);
  // InsufficientEscrow: left in the store, a later round claims it once the client deposits
  else if (reason !== 'InsufficientEscrow') await ctx.store.quarantine(record.channel, reason)
  ctx.log.warn('voucher refused; claiming the rest', { reason, channel: record.channel })
}

/**
 * Entries refused InsufficientEscrow: claim what the client's escrow holds now, min(owed,
 * claimed + balance), rather than nothing (the rest stays in the store for a later round, once
 * the client deposits). Balance and claimed are read at one block; what the batch's other
 * entries of the same client take from the escrow first is subtracted. Each channel shrinks
 * once per batch. Returns index → the amount to claim instead.
 */
export async function fitToEscrow(
  ctx: RefusalContext,
  items: { record: ChannelRecord; amount: bigint }[],
  rejected: { index: number; reason: ClaimRejection }[],
  shrunk: Set<Hex>
): Promise<Map<number, bigint>> {
  const out = new Map<number, bigint>()
  const short = rejected.filter(
    (r) => r.reason === 'InsufficientEscrow' && !shrunk.has(items[r.index]!.record.channel)
  )
  if (short.length === 0) return out
  const refusedIdx = new Set(rejected.map((r) => r.index))
  const block = await ctx.chain.blockNumber()
  const left = new Map<Address, bigint>()
  for (const r of short) {
    const { record, amount } = items[r.index]!
    const client = record.client
    if (!left.has(client)) {
      let balance = (await ctx.chain.escrowOf(client, ctx.node, block)).balance
      // the entries of this client that the contract pays in this batch take theirs first
      for (const [j, x] of items.entries())
        if (!refusedIdx.has(j) && x.record.client === client) balance -= x.amount - BigInt(x.record.claimed)
      left.set(client, balance > 0n ? balance : 0n)
    }
    const claimed = await ctx.chain.claimedOf(client, ctx.node, record.adapterId, block)
    const room = left.get(client)!
    // biome-ignore lint/complexity/useMathMinMax: bigints; Math.min takes numbers only
    const fit = claimed + room < amount ? claimed + room : amount
    shrunk.add(record.channel)
    if (fit <= claimed) continue
    out.set(r.index, fit)
    left.set(client, room - (fit - claimed))
    ctx.log.warn('escrow short of what the channel owes; claiming what it holds', {
      channel: record.channel,
      owed: amount,
      claiming: fit
    })
  }
  return out
}
