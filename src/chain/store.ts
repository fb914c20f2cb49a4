// VoucherStore: the node's durable record of what it was paid with, on a LevelDB sublevel the node
// passes in. A paid job is reserved (reserve(): its worst case against the channel and the
// client's escrow, its job id used up) before any work, counts its tokens as owed before each is
// sent (delivered()) and is settled at its end (settle(): the receipt, or what it delivered), so
// neither an abort nor a crash loses a payment (recordPayment() records a finished job in one
// step, for callers without a stream). A voucher is the client's signed MAXIMUM for the channel;
// what the node may claim is `owed`, the sum of the channel's receipts' amountDue (never more, so
// on-chain payouts equal the receipts to the wei). The Claimer reads it and writes back what the
// chain has paid; contributor proofs live here. Rules: payment-rules.ts; records: store-records.ts.
import type { AbstractBatchOperation, AbstractBatchOptions } from 'abstract-level'
import { type Address, getAddress, type Hex } from 'viem'
import { KeyedLock } from '../common/keyed-lock.ts'
import { channelKey } from './channel.ts'
import { type SignedVoucher, voucherFromJson, voucherToJson } from './eip712.ts'
import { VoucherRejectedError } from './errors.ts'
import {
  assertCoversJob,
  assertEscrowCovers,
  assertIncreasing,
  assertNoWithdrawal,
  settledDue
} from './payment-rules.ts'
import { Reservations } from './reservations.ts'
import {
  type AnyLevel,
  type ChannelRecord,
  type ClaimRecord,
  channelRecord,
  type InflightRecord,
  type PaymentReceipt,
  type PoolRecord,
  padAmount,
  type ReceiptRecord,
  type ReserveChainState,
  type ReserveInput,
  receiptRecord,
  unclaimedOf
} from './store-records.ts'

export * from './store-records.ts'

export class VoucherStore {
  private readonly db: AnyLevel
  private readonly channels
  private readonly receipts
  private readonly pools
  private readonly claims
  /** `${channel}!${jobId}` → '': a job is recorded (and owed) once */
  private readonly jobs
  /** `${client}!${channel}` → '': a client's channels without scanning them all per voucher check */
  private readonly byClient
  private readonly inflight
  /** per client: every writer of a client's channel records (see withChannelLock) */
  private readonly locks = new KeyedLock()
  /** worst cases of the jobs in flight (rebuilt from `inflight` by settleAbandoned) */
  private readonly reserved = new Reservations()

  /** `{ sync: true }` when the node is configured to fsync payment batches (chain.syncWrites) */
  // classic-level reads `sync` from the batch options; abstract-level's type does not name it
  private readonly writeOptions: AbstractBatchOptions<string, unknown>

  /**
   * `sync`: each payment batch (reserve, settle, record) returns only once LevelDB has fsynced its
   * log, so a power cut cannot lose a payment the node acknowledged; without it a process kill
   * loses nothing (the OS holds the write) but a power cut may lose the last few (docs/CHAIN.md)
   */
  constructor(db: AnyLevel, opts: { sync?: boolean } = {}) {
    this.db = db
    this.writeOptions = { sync: opts.sync === true } as AbstractBatchOptions<string, unknown>
    this.channels = db.sublevel<string, ChannelRecord>('channels', { valueEncoding: 'json' })
    this.receipts = db.sublevel<string, ReceiptRecord>('receipts', { valueEncoding: 'json' })
    this.pools = db.sublevel<string, PoolRecord>('pools', { valueEncoding: 'json' })
    this.claims = db.sublevel<string, ClaimRecord>('claims', { valueEncoding: 'json' })
    this.byClient = db.sublevel<string, string>('by-client', { valueEncoding: 'utf8' })
    this.jobs = db.sublevel<string, string>('jobs', { valueEncoding: 'utf8' })
    this.inflight = db.sublevel<string, InflightRecord>('inflight', { valueEncoding: 'json' })
  }

  /**
   * Reserves a paid job's worst case before any work (H1, C2): under the client's lock, the job id
   * must be new on the channel (JOB_REPLAYED), the voucher must not be below the channel's latest
   * (NOT_INCREASING) and must cover what the channel owes, the other jobs in flight on it and this
   * job's worst case (UNDERPAID), and `escrow` must cover what this node may claim from the client
   * with every reservation (INSUFFICIENT_ESCROW). The job id is used from here on, whatever
   * happens to the job. `onChainClaimed` starts a channel this store has never seen.
   * `chainState` is best a reader, called under the lock and reading at one block: read before the
   * lock, a claim mined in between leaves an escrow that no longer holds what the store counts as
   * unpaid, and the node would accept more than the client's escrow can pay.
   */
  async reserve(
    voucher: SignedVoucher,
    job: ReserveInput,
    chainState: ReserveChainState | (() => Promise<ReserveChainState>)
  ): Promise<{ channel: Hex }> {
    const channel = channelKey(voucher.client, voucher.node, voucher.adapterId)
    const client = getAddress(voucher.client)
    return this.withLock(client, async () => {
      const jobKey = `${channel}!${job.jobId}`
      if ((await this.jobs.get(jobKey)) !== undefined)
        throw new VoucherRejectedError(
          'JOB_REPLAYED',
          `job ${job.jobId} was already paid for on this channel; every job needs a new job id`
        )
      let prev = await this.channels.get(channel)
      assertIncreasing(voucher.cumulativeAmount, prev ? BigInt(prev.latest.cumulativeAmount) : 0n)
      const cs = typeof chainState === 'function' ? await chainState() : chainState
      assertNoWithdrawal(cs.unlockAt)
      // what the chain has paid (at the block the escrow was read) is no longer exposure
      if (prev && cs.onChainClaimed > BigInt(prev.claimed)) {
        prev = { ...prev, claimed: cs.onChainClaimed.toString(), updatedAt: Date.now() }
        await this.channels.put(channel, prev)
      }
      const owed = prev ? BigInt(prev.owed ?? '0') : cs.onChainClaimed
      assertCoversJob(voucher.cumulativeAmount, owed, this.reserved.ofChannel(channel), job.maxAmountDue)
      assertEscrowCovers(
        cs.escrow,
        (await this.unclaimedFromClient(client)) + this.reserved.ofClient(client) + job.maxAmountDue
      )
      const rec = channelRecord(channel, voucher, owed, prev)
      const flight: InflightRecord = {
        channel,
        client,
        jobId: job.jobId,
        voucher: voucherToJson(voucher),
        promptTokens: job.promptTokens,
        delivered: 0,
        pricePer1kTokens: job.pricePer1kTokens.toString(),
        maxAmountDue: job.maxAmountDue.toString(),
        startedAt: Date.now()
      }
      // biome-ignore lint/suspicious/noExplicitAny: values of sublevels with their own encodings
      const ops: AbstractBatchOperation<AnyLevel, string, any>[] = [
        { type: 'put', sublevel: this.channels, key: channel, value: rec },
        { type: 'put', sublevel: this.jobs, key: jobKey, value: '' },
        { type: 'put', sublevel: this.inflight, key: jobKey, value: flight }
      ]
      if (!prev) ops.push({ type: 'put', sublevel: this.byClient, key: `${client}!${channel}`, value: '' })
      await this.db.batch(ops, this.writeOptions)
      this.reserved.add(channel, client, job.maxAmountDue)
      return { channel }
    })
  }

  /** Records that `delivered` tokens of a job in flight are owed; call BEFORE sending token n. */
  async delivered(channel: Hex, jobId: Hex, delivered: number): Promise<void> {
    const key = `${channel}!${jobId}`
    const f = await this.inflight.get(key)
    if (!f || f.delivered >= delivered) return
    await this.inflight.put(key, { ...f, delivered })
  }

  /**
   * Ends a job in flight: what it owes is the receipt's amountDue when it finished, else its
   * delivered tokens with the prompt at the signed price (nothing when no token went out). Adds
   * that to the channel's owed total with a receipt record, and releases the reservation.
   */
  async settle(
    channel: Hex,
    jobId: Hex,
    done?: Omit<PaymentReceipt, 'jobId'>
  ): Promise<{ owed: bigint; amountDue: bigint } | undefined> {
    const key = `${channel}!${jobId}`
    const first = await this.inflight.get(key)
    if (!first) return undefined
    return this.withLock(getAddress(first.client), async () => {
      const f = await this.inflight.get(key)
      if (!f) return undefined
      const due = settledDue(f, done)
      const prev = await this.channels.get(channel)
      const prevOwed = BigInt(prev?.owed ?? '0')
      const owed = prevOwed + due
      // biome-ignore lint/suspicious/noExplicitAny: values of sublevels with their own encodings
      const ops: AbstractBatchOperation<AnyLevel, string, any>[] = [
        { type: 'del', sublevel: this.inflight, key }
      ]
      if (prev && due > 0n) {
        const latest = BigInt(prev.latest.cumulativeAmount) >= BigInt(f.voucher.cumulativeAmount)
        ops.push({
          type: 'put',
          sublevel: this.channels,
          key: channel,
          value: {
            ...prev,
            owed: owed.toString(),
            ...(latest ? {} : { latest: f.voucher }),
            updatedAt: Date.now()
          }
        })
        ops.push(
          this.receiptPut(
            channel,
            receiptRecord(jobId, due, owed, f.voucher.cumulativeAmount, done, { delivered: f.delivered })
          )
        )
      }
      await this.db.batch(ops, this.writeOptions)
      this.reserved.add(channel, getAddress(f.client), -BigInt(f.maxAmountDue))
      return { owed: prev && due > 0n ? owed : prevOwed, amountDue: prev ? due : 0n }
    })
  }

  /** Jobs in flight when the node stopped (a crash): settled at start for what they delivered. */
  async settleAbandoned(): Promise<number> {
    const all = await this.inflight.values().all()
    for (const f of all) {
      this.reserved.add(f.channel, getAddress(f.client), BigInt(f.maxAmountDue))
      await this.settle(f.channel, f.jobId)
    }
    return all.length
  }

  /** Worst cases reserved by the client's jobs in flight at this node. */
  reservedFromClient(client: Address): bigint {
    return this.reserved.ofClient(getAddress(client))
  }

  /**
   * Records a (checked) voucher and the receipt of the job it pays for, atomically. The channel's
   * `owed` grows by the receipt's amountDue; the voucher's signed maximum must cover it (UNDERPAID)
   * and must not be below the channel's latest voucher (NOT_INCREASING). A voucher equal to the
   * latest one is accepted while it still covers what is owed: a client that signed ahead for a
   * job's worst case (prompt + maxNewTokens) spends the margin on its next jobs, and whatever is
   * never spent is never claimed. Recording the same jobId twice changes nothing. `baseline` is
   * what the channel owed before, used only for a channel this store has no record of (a fresh
   * data dir: the chain's claimed amount), so the first claim is not below what was already paid.
   * `increase` is what this call added to `owed`.
   */
  async recordPayment(
    voucher: SignedVoucher,
    receipt?: PaymentReceipt,
    opts: { baseline?: bigint } = {}
  ): Promise<{ channel: Hex; increase: bigint; owed: bigint }> {
    const channel = channelKey(voucher.client, voucher.node, voucher.adapterId)
    return this.withLock(getAddress(voucher.client), async () => {
      const prev = await this.channels.get(channel)
      const prevOwed = prev ? BigInt(prev.owed ?? '0') : (opts.baseline ?? 0n)
      assertIncreasing(voucher.cumulativeAmount, prev ? BigInt(prev.latest.cumulativeAmount) : 0n)
      const jobKey = receipt ? `${channel}!${receipt.jobId}` : undefined
      if (jobKey && (await this.jobs.get(jobKey)) !== undefined)
        return { channel, increase: 0n, owed: prevOwed }
      const owed = prevOwed + (receipt?.amountDue ?? 0n)
      if (voucher.cumulativeAmount < owed)
        throw new VoucherRejectedError(
          'UNDERPAID',
          `cumulativeAmount ${voucher.cumulativeAmount} does not cover ${owed} owed`,
          { needed: owed.toString() }
        )
      // no quarantine carried over here, unlike reserve (as before the rules moved to payment-rules.ts)
      const rec = channelRecord(channel, voucher, owed, { claimed: prev?.claimed })
      // biome-ignore lint/suspicious/noExplicitAny: values of two sublevels with their own encodings
      const ops: AbstractBatchOperation<AnyLevel, string, any>[] = [
        { type: 'put', sublevel: this.channels, key: channel, value: rec }
      ]
      if (!prev)
        ops.push({ type: 'put', sublevel: this.byClient, key: `${rec.client}!${channel}`, value: '' })
      if (receipt && jobKey) {
        const { jobId, amountDue } = receipt
        ops.push(
          this.receiptPut(
            channel,
            receiptRecord(jobId, amountDue, owed, voucher.cumulativeAmount.toString(), receipt)
          )
        )
        ops.push({ type: 'put', sublevel: this.jobs, key: jobKey, value: '' })
      }
      await this.db.batch(ops, this.writeOptions)
      return { channel, increase: owed - prevOwed, owed }
    })
  }

  async getChannel(channel: Hex): Promise<ChannelRecord | undefined> {
    return this.channels.get(channel)
  }

  async allChannels(): Promise<ChannelRecord[]> {
    return this.channels.values().all()
  }

  /**
   * Channels that owe more than the chain has paid and are not quarantined, with what to claim:
   * `amount` = owed (the channel's cumulative total, ≤ the latest voucher's signed maximum).
   */
  async unclaimed(
    node?: Address
  ): Promise<{ record: ChannelRecord; voucher: SignedVoucher; amount: bigint; unclaimed: bigint }[]> {
    const out = []
    for (const record of await this.allChannels()) {
      if (record.quarantined) continue
      if (node && record.node !== getAddress(node)) continue
      const d = unclaimedOf(record)
      if (d > 0n)
        out.push({
          record,
          voucher: voucherFromJson(record.latest),
          amount: BigInt(record.owed ?? '0'),
          unclaimed: d
        })
    }
    return out
  }

  /** What this node is owed by `client` (receipts' amountDue) that the chain has not paid yet. */
  async unclaimedFromClient(client: Address): Promise<bigint> {
    const who = getAddress(client)
    const keys = await this.byClient.keys({ gt: `${who}!`, lt: `${who}!~` }).all()
    const recs = await this.channels.getMany(keys.map((k) => k.slice(who.length + 1)))
    let sum = 0n
    for (const r of recs) {
      if (!r) continue
      const d = unclaimedOf(r)
      if (d > 0n) sum += d
    }
    return sum
  }

  /** Moves the channel's claimed amount up to what the chain reports (never down). */
  async setClaimed(channel: Hex, claimed: bigint): Promise<void> {
    await this.withChannelLock(channel, async () => {
      const rec = await this.channels.get(channel)
      if (!rec || BigInt(rec.claimed) >= claimed) return
      await this.channels.put(channel, { ...rec, claimed: claimed.toString(), updatedAt: Date.now() })
    })
  }

  async quarantine(channel: Hex, reason: string): Promise<void> {
    await this.withChannelLock(channel, async () => {
      const rec = await this.channels.get(channel)
      if (rec) await this.channels.put(channel, { ...rec, quarantined: reason, updatedAt: Date.now() })
    })
  }

  /** Receipts whose channel total (`owed` with the job) is in (fromExclusive, toInclusive]: those a
   * claim from the claimed amount `fromExclusive` up to `toInclusive` pays. */
  async receiptsFor(channel: Hex, fromExclusive: bigint, toInclusive: bigint): Promise<ReceiptRecord[]> {
    return this.receipts
      .values({
        gt: `${channel}!${padAmount(fromExclusive)}!~`,
        lte: `${channel}!${padAmount(toInclusive)}!~`
      })
      .all()
  }

  /**
   * Keyed by creation time, root and datanet: two claims may well fund equal trees, and so may two
   * datanets of one claim (the same contributors at the same amounts).
   */
  async savePool(p: PoolRecord): Promise<void> {
    await this.pools.put(poolKey(p), p)
  }

  async deletePool(p: Pick<PoolRecord, 'createdAt' | 'root' | 'datanetId'>): Promise<void> {
    // and the key without the datanet, as databases written before it had
    await this.pools.batch([
      { type: 'del', key: poolKey(p) },
      { type: 'del', key: `${String(p.createdAt).padStart(16, '0')}!${p.root}` }
    ])
  }

  async allPools(): Promise<PoolRecord[]> {
    return this.pools.values().all()
  }

  async saveClaim(c: ClaimRecord): Promise<void> {
    await this.claims.put(`${String(c.at).padStart(16, '0')}!${c.txHash}`, c)
  }

  async allClaims(): Promise<ClaimRecord[]> {
    return this.claims.values().all()
  }

  /**
   * Every writer of a channel record reads it and writes it back whole, so all of them take the
   * same lock: the channel's client (reserve and settle need the client's other channels too).
   * A claim landing beside a settle under two different locks rolled back what the job owed.
   */
  private async withChannelLock(channel: Hex, fn: () => Promise<void>): Promise<void> {
    const rec = await this.channels.get(channel)
    if (!rec) return // nothing to update; a channel is only ever created under its client's lock
    await this.withLock(getAddress(rec.client), fn)
  }

  private withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(key, fn)
  }

  /** keyed by the channel's owed total with the job, so receiptsFor reads a claim's range in order */
  private receiptPut(channel: Hex, r: ReceiptRecord) {
    return {
      type: 'put' as const,
      sublevel: this.receipts,
      key: `${channel}!${padAmount(BigInt(r.owed))}!${r.jobId}`,
      value: r
    }
  }
}

function poolKey(p: Pick<PoolRecord, 'createdAt' | 'root' | 'datanetId'>): string {
  return `${String(p.createdAt).padStart(16, '0')}!${p.root}!${p.datanetId.toLowerCase()}`
}
