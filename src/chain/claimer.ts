// Claimer: turns what the VoucherStore's channels are owed into Settlement.claim transactions, every
// claimIntervalSec or as soon as the unclaimed value reaches minClaim. Each entry claims the
// channel's owed total (the sum of its receipts' amountDue) under the client's latest voucher,
// which only caps it: the margin the client signed ahead is never claimed. Batches are sorted by
// adapter (one owner lookup per run on-chain) and capped at maxBatch. Each batch is simulated
// first: the contract settles valid entries and reports refused ones (M2), which are dealt with by
// reason (already paid: catch up with the chain; escrow short: wait; bad signature or unknown
// adapter: quarantine) and left out, so no client's voucher blocks the rest; other failures back
// off exponentially. On start it reconciles with the chain: channel amounts come
// from the contract itself, so a voucher claimed before a crash is never claimed twice, and a
// voucher stored but not yet claimed is claimed after the restart.
// This file is the claim loop (when to claim, batching, simulate → send → record); the policies it
// calls live beside it: refusals by reason (claim-refusals.ts), the attribution plan and its pool
// records (claim-attribution.ts), reconciling with the chain (claim-reconcile.ts).
import type { Address, Hex } from 'viem'
import { createLogger, type Logger } from '../common/log.ts'
import { type NodeMetrics, openOf } from '../metrics/registry.ts'
import { AttributionPlanner, poolRecord } from './claim-attribution.ts'
import { reconcileWithChain } from './claim-reconcile.ts'
import { fitToEscrow, handleRefused, type RefusalContext } from './claim-refusals.ts'
import type { ChainClient, ClaimRejection } from './client.ts'
import { isCanonicalSignature, type SignedVoucher } from './eip712.ts'
import { ChainCallError, revertArgs } from './errors.ts'
import { MAX_ATTRIBUTIONS } from './pool-attribution.ts'
import { splitPayment } from './shares.ts'
import type { ChannelRecord, VoucherStore } from './store.ts'

export interface ClaimerInit {
  /** seconds between claim rounds; default 300 */
  claimIntervalSec?: number
  /** claim at once when this much (wei) is unclaimed; default 1 OPEN */
  minClaim?: bigint
  /** vouchers per transaction; 100 keeps a claim near 2M gas */
  maxBatch?: number
  retryBaseMs?: number
  retryMaxMs?: number
  /** first block to search for this node's PoolFunded events when reconciling */
  fromBlock?: bigint
  /** called after a claim funded pools or a reconcile learned their ids (to publish them, M1) */
  onPoolsFunded?: () => void | Promise<void>
  logger?: Logger
  /** the node's registry: claims, their gas and earnings by role (docs/METRICS.md) */
  metrics?: NodeMetrics
}

export interface ClaimerComponents {
  chain: ChainClient
  store: VoucherStore
}

export interface ClaimOutcome {
  txHash: Hex
  vouchers: number
  total: bigint
  gasUsed: bigint
  poolIds: bigint[]
}

export class Claimer {
  private readonly chain: ChainClient
  private readonly store: VoucherStore
  private readonly node: Address
  private readonly intervalMs: number
  private readonly minClaim: bigint
  private readonly maxBatch: number
  private readonly retryBaseMs: number
  private readonly retryMaxMs: number
  private readonly fromBlock: bigint
  private readonly log: Logger
  private readonly onPoolsFunded: (() => void | Promise<void>) | undefined
  private readonly metrics: NodeMetrics | undefined
  private timer: NodeJS.Timeout | undefined
  private running: Promise<ClaimOutcome[]> | undefined
  private failures = 0
  private started = false
  private readonly planner: AttributionPlanner
  private readonly refusals: RefusalContext

  constructor(components: ClaimerComponents, init: ClaimerInit = {}) {
    this.chain = components.chain
    this.store = components.store
    this.node = components.chain.address
    this.intervalMs = (init.claimIntervalSec ?? 300) * 1000
    this.minClaim = init.minClaim ?? 10n ** 18n
    this.maxBatch = init.maxBatch ?? 100
    this.retryBaseMs = init.retryBaseMs ?? 1000
    this.retryMaxMs = init.retryMaxMs ?? 60_000
    this.fromBlock = init.fromBlock ?? 0n
    this.log = init.logger ?? createLogger('chain:claimer')
    this.onPoolsFunded = init.onPoolsFunded
    this.metrics = init.metrics
    this.planner = new AttributionPlanner(this.chain)
    this.refusals = { chain: this.chain, store: this.store, node: this.node, log: this.log }
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    let pending: bigint
    try {
      await this.reconcile()
      pending = await this.pendingAmount()
    } catch (err) {
      // the chain is not reachable yet: retry soon rather than after a whole interval
      this.failures = 1
      this.log.warn('reconcile failed; retrying', { err, backoffMs: this.retryBaseMs })
      this.schedule(this.retryBaseMs)
      return
    }
    // what was stored before a restart is claimed in the first round: at once when it is worth it
    this.schedule(pending >= this.minClaim ? 0 : this.intervalMs)
  }

  async stop(): Promise<void> {
    this.started = false
    clearTimeout(this.timer)
    this.timer = undefined
    await this.running?.catch(() => {})
  }

  /** Call after each recorded payment: claims at once when the unclaimed value reaches minClaim. */
  notify(): void {
    if (!this.started || this.running) return
    void this.pendingAmount()
      .then((p) => {
        if (p >= this.minClaim && this.started && !this.running) this.schedule(0)
      })
      .catch((err) => this.log.debug('pending amount failed', { err }))
  }

  async pendingAmount(): Promise<bigint> {
    let sum = 0n
    for (const u of await this.store.unclaimed(this.node)) sum += u.unclaimed
    return sum
  }

  /** Reads every stored channel's claimed amount and the pools of past claims from the chain. */
  async reconcile(): Promise<void> {
    const { channels, openPools } = await reconcileWithChain(
      this.chain,
      this.store,
      this.node,
      this.fromBlock
    )
    if (openPools > 0) await this.poolsFunded()
    this.log.debug('reconciled', { channels, openPools })
  }

  /** Claims everything unclaimed now (single flight: a second call joins the first). */
  claimNow(): Promise<ClaimOutcome[]> {
    if (this.running) return this.running
    this.running = this.claimAll().finally(() => {
      this.running = undefined
    })
    return this.running
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer)
    if (!this.started) return
    this.timer = setTimeout(() => {
      this.claimNow().then(
        () => {
          this.failures = 0
          this.schedule(this.intervalMs)
        },
        (err) => {
          this.failures++
          const backoff = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** (this.failures - 1))
          this.log.warn('claim round failed; retrying', { err, failures: this.failures, backoffMs: backoff })
          this.schedule(backoff)
        }
      )
    }, delayMs)
    this.timer.unref?.()
  }

  private async claimAll(): Promise<ClaimOutcome[]> {
    await this.reconcile()
    const todo = (await this.store.unclaimed(this.node)).sort((a, b) =>
      a.record.adapterId < b.record.adapterId ? -1 : a.record.adapterId > b.record.adapterId ? 1 : 0
    )
    const out: ClaimOutcome[] = []
    for (let i = 0; i < todo.length; i += this.maxBatch) {
      const r = await this.claimBatch(
        todo
          .slice(i, i + this.maxBatch)
          .map((t) => ({ record: t.record, voucher: t.voucher, amount: t.amount }))
      )
      if (r) out.push(r)
    }
    return out
  }

  private async claimBatch(
    batch: { record: ChannelRecord; voucher: SignedVoucher; amount: bigint }[]
  ): Promise<ClaimOutcome | undefined> {
    // a signature the contract cannot even take (not low-s, not 65 bytes) never enters a claim
    let items = []
    for (const x of batch) {
      if (isCanonicalSignature(x.voucher.signature)) items.push(x)
      else await handleRefused(this.refusals, x, 'InvalidSignature')
    }
    let withAttribution = true
    const shrunk = new Set<Hex>()
    // datanets whose attribution the contract refused in this batch: planned without them after
    const refusedDatanets = new Set<Hex>()
    // each pass removes or shrinks (once) at least one entry, one datanet or the attribution: this ends
    for (let attempt = 0; attempt <= 2 * batch.length + MAX_ATTRIBUTIONS + 1 && items.length > 0; attempt++) {
      const jobs = await Promise.all(
        items.map(async ({ record, amount }) => {
          const claimed = BigInt(record.claimed)
          return {
            adapterId: record.adapterId,
            increase: amount - claimed,
            receipts: await this.store.receiptsFor(record.channel, claimed, amount)
          }
        })
      )
      const entries = items.map((x) => ({ voucher: x.voucher, amount: x.amount }))
      // The contract settles the valid entries and reports the others; simulating first (without
      // attributions, whose totals depend on what is paid) keeps the refused ones out, so the
      // attribution is planned from exactly the entries that get paid.
      const sim = await this.chain.simulateClaim(entries, [])
      if (sim.rejected.length > 0) {
        const out = new Set(sim.rejected.map((r) => r.index))
        const fitted = await fitToEscrow(this.refusals, items, sim.rejected, shrunk)
        for (const r of sim.rejected) {
          const amount = fitted.get(r.index)
          if (amount === undefined) await handleRefused(this.refusals, items[r.index]!, r.reason)
          else {
            out.delete(r.index)
            items[r.index] = { ...items[r.index]!, amount }
          }
        }
        items = items.filter((_, j) => !out.has(j))
        continue
      }
      const plan = withAttribution
        ? await this.planner.plan(jobs, refusedDatanets)
        : { attributions: [], pools: [] }
      if (plan.attributions.length > 0) {
        try {
          await this.chain.simulateClaim(entries, plan.attributions)
        } catch (err) {
          const reason = err instanceof ChainCallError ? err.revert : undefined
          if (reason !== 'AttributionMismatch' && reason !== 'BadAttribution') throw err
          // BadAttribution names the refused attribution: only that datanet's pool goes to the
          // protocol, the other datanets of the batch are still funded
          const index = reason === 'BadAttribution' ? Number(revertArgs(err)?.[0]) : Number.NaN
          const datanet = plan.attributions[index]?.datanetId
          if (datanet && !refusedDatanets.has(datanet)) {
            refusedDatanets.add(datanet)
            this.log.warn('attribution of a datanet refused; claiming without it', { reason, datanet })
          } else {
            this.log.warn('attribution refused; claiming without it', { reason })
            withAttribution = false
          }
          continue
        }
      }
      const createdAt = Date.now()
      // the trees are stored before the transaction so contributors' proofs survive a crash
      for (const p of plan.pools) await this.store.savePool(poolRecord(p, createdAt))
      const sentAt = performance.now()
      let res: Awaited<ReturnType<ChainClient['claim']>>
      this.metrics?.claims.inc({ outcome: 'sent' })
      try {
        res = await this.chain.claim(entries, plan.attributions)
      } catch (err) {
        this.metrics?.claims.inc({
          outcome: err instanceof ChainCallError && err.revert ? 'reverted' : 'failed'
        })
        // a revert is seen in simulation, before anything is sent: the planned trees are void
        if (err instanceof ChainCallError && err.revert)
          for (const p of plan.pools)
            await this.store.deletePool({ createdAt, root: p.tree.root, datanetId: p.datanetId })
        throw err
      }
      for (const [k, p] of plan.pools.entries()) {
        const poolId = res.poolIds[k]
        if (poolId == null) continue
        await this.store.savePool({ ...poolRecord(p, createdAt), poolId: poolId.toString() })
      }
      if (res.poolIds.length > 0) await this.poolsFunded()
      // an entry refused between the simulation and the block stays unpaid: handled by reason
      const late = new Set(res.rejected.map((r) => r.index))
      for (const r of res.rejected)
        await handleRefused(this.refusals, items[r.index]!, r.reason as ClaimRejection)
      const paid = items.filter((_, j) => !late.has(j))
      for (const { record, amount } of paid) await this.store.setClaimed(record.channel, amount)
      this.countClaim(
        res.gasUsed,
        jobs.filter((_, j) => !late.has(j)).map((x) => x.increase)
      )
      await this.store.saveClaim({
        txHash: res.hash,
        vouchers: items.flatMap(({ record, voucher, amount }, j) =>
          late.has(j)
            ? []
            : [
                {
                  channel: record.channel,
                  adapterId: record.adapterId,
                  cumulativeAmount: voucher.cumulativeAmount.toString(),
                  amount: amount.toString(),
                  increase: jobs[j]!.increase.toString()
                }
              ]
        ),
        total: res.total.toString(),
        gasUsed: res.gasUsed.toString(),
        at: Date.now()
      })
      this.log.info('claimed', {
        tx: res.hash,
        vouchers: paid.length,
        rejected: res.rejected.length,
        total: res.total,
        gasUsed: res.gasUsed,
        // send → mined receipt (the swarm report counts it as settlement time)
        ms: Math.round(performance.now() - sentAt)
      })
      return {
        txHash: res.hash,
        vouchers: paid.length,
        total: res.total,
        gasUsed: res.gasUsed,
        poolIds: res.poolIds
      }
    }
    return undefined
  }

  /** A mined claim: its gas, and what its vouchers paid each role, split as the contract splits. */
  private countClaim(gasUsed: bigint, increases: bigint[]): void {
    const m = this.metrics
    if (!m) return
    m.claims.inc({ outcome: 'confirmed' })
    m.claimGas.inc({ outcome: 'confirmed' }, Number(gasUsed))
    const sum = { node: 0n, owner: 0n, pool: 0n }
    for (const inc of increases) {
      const s = splitPayment(inc)
      sum.node += s.node
      sum.owner += s.owner
      sum.pool += s.pool
    }
    m.earnings.inc({ role: 'operator' }, openOf(sum.node))
    m.earnings.inc({ role: 'adapter_owner' }, openOf(sum.owner))
    m.earnings.inc({ role: 'pool' }, openOf(sum.pool))
  }

  private async poolsFunded(): Promise<void> {
    try {
      await this.onPoolsFunded?.()
    } catch (err) {
      this.log.warn('publishing the funded pools failed', { err })
    }
  }
}
