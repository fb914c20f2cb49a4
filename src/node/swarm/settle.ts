// After the nodes stopped: what each node still holds unclaimed is claimed from its own data dir
// (the same VoucherStore and operator key the node uses, so this is the node's claim, triggered),
// and every contributor's share of the pools the nodes funded is withdrawn to the contributor
// with the proofs kept in those stores. Returns what it did per node.
import { join } from 'node:path'
import { Level } from 'level'
import type { Address, Hex } from 'viem'
import { Claimer } from '../../chain/claimer.ts'
import { ChainClient } from '../../chain/client.ts'
import type { ChainEndpoint } from '../../chain/config.ts'
import { proofsFor } from '../../chain/contributions.ts'
import { VoucherStore } from '../../chain/store.ts'
import { silentLogger } from '../../common/log.ts'
import { openDataDir } from '../datadir.ts'
import { loadOperatorKey } from '../identity.ts'

/** A channel as the serving node stored it: its latest voucher and every receipt it recorded. */
export interface StoredChannel {
  channel: Hex
  /** the latest voucher's cumulative amount (the most the client signed for) */
  latest: bigint
  /** job id → amountDue of each receipt the node stored with a payment */
  receipts: Map<Hex, bigint>
}

export interface NodeSettlement {
  dir: string
  operator: Address
  /** vouchers still unclaimed when the node stopped, and claimed here */
  leftUnclaimed: number
  claimedHere: bigint
  /** contributor withdrawals submitted from this node's pools */
  withdrawals: number
  withdrawn: bigint
  channels: StoredChannel[]
}

/** above any amount a receipt key can hold (keys pad amounts to 78 digits) */
const ALL = 10n ** 77n

export async function settleNodeDir(
  dir: string,
  endpoint: ChainEndpoint,
  contributors: Address[],
  payer: ChainClient
): Promise<NodeSettlement> {
  const dd = openDataDir(dir)
  const db = new Level<string, Uint8Array>(join(dd.path, 'db'), { valueEncoding: 'view' })
  try {
    await db.open()
    const operator = loadOperatorKey(dd.keysDir, silentLogger)
    const store = new VoucherStore(db.sublevel('chain') as never)
    const chain = new ChainClient({ ...endpoint, account: operator })
    const claimer = new Claimer(
      { chain, store },
      { logger: silentLogger, retryBaseMs: 200, retryMaxMs: 2_000 }
    )
    // reconcile first: a claim the node sent just before it stopped is not sent twice
    await claimer.reconcile()
    const left = await store.unclaimed(operator.address)
    let claimedHere = 0n
    if (left.length > 0) for (const o of await claimer.claimNow()) claimedHere += o.total
    // pool ids of claims mined after the node's last reconcile
    await claimer.reconcile()
    let withdrawals = 0
    let withdrawn = 0n
    for (const who of contributors)
      for (const p of await proofsFor(store, who)) {
        if (await payer.isContributionWithdrawn(p.poolId, p.index)) continue
        await payer.withdrawContribution(p)
        withdrawals++
        withdrawn += p.amount
      }
    const channels: StoredChannel[] = []
    for (const c of await store.allChannels()) {
      const receipts = new Map<Hex, bigint>()
      for (const r of await store.receiptsFor(c.channel, 0n, ALL)) receipts.set(r.jobId, BigInt(r.amountDue))
      channels.push({ channel: c.channel, latest: BigInt(c.latest.cumulativeAmount), receipts })
    }
    return {
      dir,
      operator: operator.address,
      leftUnclaimed: left.length,
      claimedHere,
      withdrawals,
      withdrawn,
      channels
    }
  } finally {
    await db.close().catch(() => {})
    dd.release()
  }
}
