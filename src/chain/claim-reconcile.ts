// Reconciling the Claimer's store with the chain, before every round and at start: channel
// amounts come from the contract itself, so a voucher claimed before a crash is never claimed
// twice (docs/THREATS.md D2), and pools planned before a crash learn the ids their claim got
// on-chain from its PoolFunded events. Apart from the claim loop because it is the crash-recovery
// half of the Claimer: it reads the chain and writes the store, and sends nothing.
import type { Address } from 'viem'
import type { ChainClient } from './client.ts'
import { poolsFundedBy } from './events.ts'
import type { VoucherStore } from './store.ts'

/** channels per claimedOfMany view call, so one eth_call's calldata and gas stay bounded */
const CHUNK = 500
/** planned pools not seen on-chain after this long belong to claims that were never mined */
const STALE_POOL_MS = 24 * 3600_000

/**
 * Reads every stored channel's claimed amount and the pools of past claims from the chain.
 * Returns how many channels were read and how many pools were still waiting for their id.
 */
export async function reconcileWithChain(
  chain: ChainClient,
  store: VoucherStore,
  node: Address,
  fromBlock: bigint
): Promise<{ channels: number; openPools: number }> {
  const mine = (await store.allChannels()).filter((c) => c.node === node)
  for (let i = 0; i < mine.length; i += CHUNK) {
    const part = mine.slice(i, i + CHUNK)
    const amounts = await chain.claimedOfMany(part.map((c) => c.channel))
    await Promise.all(part.map((c, j) => store.setClaimed(c.channel, amounts[j]!)))
  }
  const open = (await store.allPools()).filter((p) => p.poolId == null)
  if (open.length > 0) {
    const funded = await poolsFundedBy(chain, node, fromBlock)
    const known = new Set((await store.allPools()).map((p) => p.poolId).filter((x) => x != null))
    for (const p of open) {
      const hit = funded.find(
        (f) =>
          f.root === p.root &&
          f.datanetId.toLowerCase() === p.datanetId.toLowerCase() &&
          !known.has(f.poolId.toString())
      )
      if (!hit) {
        // a claim that never made it on-chain: its vouchers are claimed again with a new plan,
        // so the old tree only makes every later reconcile scan the event history
        if (Date.now() - p.createdAt > STALE_POOL_MS) await store.deletePool(p)
        continue
      }
      known.add(hit.poolId.toString())
      await store.savePool({ ...p, poolId: hit.poolId.toString() })
    }
  }
  return { channels: mine.length, openPools: open.length }
}
