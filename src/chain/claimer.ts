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
import type { Address, Hex } from 'viem'
import { createLogger, type Logger } from '../common/log.ts'
import { type NodeMetrics, openOf } from '../metrics/registry.ts'
import type { ChainClient, ClaimRejection } from './client.ts'
import { isCanonicalSignature, type SignedVoucher } from './eip712.ts'
import { ChainCallError, revertArgs } from './errors.ts'
import { poolsFundedBy } from './events.ts'
import {
  type DeclaredDatanet,
  MAX_ATTRIBUTIONS,
  type PlannedPool,
  planAttribution,
  receiptLeaf
} from './pool-attribution.ts'
import { splitPayment } from './shares.ts'
import type { ChannelRecord, PoolRecord, VoucherStore } from './store.ts'

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

const CHUNK = 500
/** planned pools not seen on-chain after this long belong to claims that were never mined */
const STALE_POOL_MS = 24 * 3600_000

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
  private readonly datanetKnown = new Set<Hex>()

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
    const mine = (await this.store.allChannels()).filter((c) => c.node === this.node)
    for (let i = 0; i < mine.length; i += CHUNK) {
      const part = mine.slice(i, i + CHUNK)
      const amounts = await this.chain.claimedOfMany(part.map((c) => c.channel))
      await Promise.all(part.map((c, j) => this.store.setClaimed(c.channel, amounts[j]!)))
    }
    const open = (await this.store.allPools()).filter((p) => p.poolId == null)
    if (open.length > 0) {
      const funded = await poolsFundedBy(this.chain, this.node, this.fromBlock)
      const known = new Set((await this.store.allPools()).map((p) => p.poolId).filter((x) => x != null))
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
          if (Date.now() - p.createdAt > STALE_POOL_MS) await this.store.deletePool(p)
          continue
        }
        known.add(hit.poolId.toString())
        await this.store.savePool({ ...p, poolId: hit.poolId.toString() })
      }
      await this.poolsFunded()
    }
    this.log.debug('reconciled', { channels: mine.length, openPools: open.length })
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
      else await this.refused(x, 'InvalidSignature')
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
        const fitted = await this.fitToEscrow(items, sim.rejected, shrunk)
        for (const r of sim.rejected) {
          const amount = fitted.get(r.index)
          if (amount === undefined) await this.refused(items[r.index]!, r.reason)
          else {
            out.delete(r.index)
            items[r.index] = { ...items[r.index]!, amount }
          }
        }
        items = items.filter((_, j) => !out.has(j))
        continue
      }
      const plan = withAttribution ? await this.plan(jobs, refusedDatanets) : { attributions: [], pools: [] }
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
      for (const r of res.rejected) await this.refused(items[r.index]!, r.reason as ClaimRejection)
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

  /**
   * Entries refused InsufficientEscrow: claim what the client's escrow holds now, min(owed,
   * claimed + balance), rather than nothing (the rest stays in the store for a later round, once
   * the client deposits). Balance and claimed are read at one block; what the batch's other
   * entries of the same client take from the escrow first is subtracted. Each channel shrinks
   * once per batch. Returns index → the amount to claim instead.
   */
  private async fitToEscrow(
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
    const block = await this.chain.blockNumber()
    const left = new Map<Address, bigint>()
    for (const r of short) {
      const { record, amount } = items[r.index]!
      const client = record.client
      if (!left.has(client)) {
        let balance = (await this.chain.escrowOf(client, this.node, block)).balance
        // the entries of this client that the contract pays in this batch take theirs first
        for (const [j, x] of items.entries())
          if (!refusedIdx.has(j) && x.record.client === client) balance -= x.amount - BigInt(x.record.claimed)
        left.set(client, balance > 0n ? balance : 0n)
      }
      const claimed = await this.chain.claimedOf(client, this.node, record.adapterId, block)
      const room = left.get(client)!
      // biome-ignore lint/complexity/useMathMinMax: bigints; Math.min takes numbers only
      const fit = claimed + room < amount ? claimed + room : amount
      shrunk.add(record.channel)
      if (fit <= claimed) continue
      out.set(r.index, fit)
      left.set(client, room - (fit - claimed))
      this.log.warn('escrow short of what the channel owes; claiming what it holds', {
        channel: record.channel,
        owed: amount,
        claiming: fit
      })
    }
    return out
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

  /** A refused entry, by reason: catch up with the chain, wait for escrow, or quarantine. */
  private async refused(
    x: { record: ChannelRecord; voucher: SignedVoucher },
    reason: ClaimRejection
  ): Promise<void> {
    const { record } = x
    if (reason === 'NotIncreasing')
      await this.store.setClaimed(
        record.channel,
        await this.chain.claimedOf(record.client, record.node, record.adapterId)
      )
    // AboveSignedMaximum cannot happen for what recordPayment accepted (owed ≤ the voucher);
    // InsufficientEscrow: left in the store, a later round claims it once the client deposits
    else if (reason !== 'InsufficientEscrow') await this.store.quarantine(record.channel, reason)
    this.log.warn('voucher refused; claiming the rest', { reason, channel: record.channel })
  }

  private async plan(jobs: Parameters<typeof planAttribution>[0], refused: ReadonlySet<Hex>) {
    const ids = new Set<Hex>()
    const declared = new Map<Hex, DeclaredDatanet[]>()
    for (const j of jobs) {
      const adapterId = j.adapterId.toLowerCase() as Hex
      // the registration as the contract reads it in this claim (read per batch: it may change)
      if (
        !declared.has(adapterId) &&
        !/^0x0+$/.test(adapterId) &&
        j.receipts.some((r) => r.attribution?.contributors.length)
      ) {
        const a = await this.chain.getAdapter(adapterId)
        declared.set(
          adapterId,
          a.datanets.map((id, k) => ({ id: id.toLowerCase() as Hex, bps: Number(a.weightsBps[k]) }))
        )
      }
      for (const r of j.receipts)
        for (const d of r.attribution?.datanets ?? []) ids.add(d.id.toLowerCase() as Hex)
    }
    // only "exists" is cached: a datanet registered later is picked up by the next round
    for (const id of ids) {
      if (!this.datanetKnown.has(id) && (await this.chain.datanetExists(id))) this.datanetKnown.add(id)
    }
    return planAttribution(
      jobs,
      (adapterId) => declared.get(adapterId.toLowerCase() as Hex) ?? [],
      (id) => this.datanetKnown.has(id) && !refused.has(id)
    )
  }
}

/** A planned pool as the store keeps it: leaves, and what the tree is bound to with its receipts. */
function poolRecord(p: PlannedPool, createdAt: number): PoolRecord {
  return {
    root: p.tree.root,
    datanetId: p.datanetId,
    total: p.tree.total.toString(),
    leaves: p.tree.leaves.map((l) => ({ account: l.account, amount: l.amount.toString() })),
    binding: p.binding,
    runs: p.runs.map((r) => ({
      adapterId: r.adapterId,
      budget: r.budget.toString(),
      receipts: r.receipts.map((x) => ({
        digest: receiptLeaf(x),
        ...(x.receipt !== undefined ? { receipt: x.receipt } : {})
      }))
    })),
    createdAt
  }
}
