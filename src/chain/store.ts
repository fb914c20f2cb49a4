// VoucherStore: the node's durable record of what it was paid with, on a LevelDB sublevel the node
// passes in. recordPayment() writes the voucher and the job's receipt in one batch and must
// resolve BEFORE the node sends the job's result, so a crash never loses a payment. The Claimer
// reads it and writes back what the chain has paid; contributor proofs for claimed pools live here.
import type { AbstractBatchOperation, AbstractLevel } from 'abstract-level'
import { type Address, getAddress, type Hex } from 'viem'
import { type SignedVoucher, type VoucherJson, voucherFromJson, voucherToJson } from './eip712.ts'
import { VoucherRejectedError } from './errors.ts'
import { channelKey } from './vouchers.ts'

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
}

export interface ChannelRecord {
  channel: Hex
  client: Address
  node: Address
  adapterId: Hex
  latest: VoucherJson
  /** cumulative amount the chain has paid on this channel, as last seen */
  claimed: string
  /** sum of amountDue of the jobs recorded on this channel */
  owed?: string
  /** set when the chain refuses the voucher for a reason retrying cannot fix */
  quarantined?: string
  updatedAt: number
}

export interface ReceiptRecord {
  jobId: Hex
  amountDue: string
  cumulativeAmount: string
  attribution?: JobAttribution
  receipt?: unknown
}

export interface PoolRecord {
  root: Hex
  datanetId: Hex
  total: string
  leaves: { account: Address; amount: string }[]
  /** set once the claim that funded it is seen on-chain */
  poolId?: string
  createdAt: number
}

export interface ClaimRecord {
  txHash: Hex
  vouchers: { channel: Hex; adapterId: Hex; cumulativeAmount: string; increase: string }[]
  total: string
  gasUsed: string
  at: number
}

/** zero-padded so that string order of keys is numeric order of amounts */
export function padAmount(n: bigint): string {
  return n.toString().padStart(78, '0')
}

export class VoucherStore {
  private readonly db: AnyLevel
  private readonly channels
  private readonly receipts
  private readonly pools
  private readonly claims
  /** `${client}!${channel}` → '': a client's channels without scanning them all per voucher check */
  private readonly byClient
  private readonly locks = new Map<string, Promise<unknown>>()

  constructor(db: AnyLevel) {
    this.db = db
    this.channels = db.sublevel<string, ChannelRecord>('channels', { valueEncoding: 'json' })
    this.receipts = db.sublevel<string, ReceiptRecord>('receipts', { valueEncoding: 'json' })
    this.pools = db.sublevel<string, PoolRecord>('pools', { valueEncoding: 'json' })
    this.claims = db.sublevel<string, ClaimRecord>('claims', { valueEncoding: 'json' })
    this.byClient = db.sublevel<string, string>('by-client', { valueEncoding: 'utf8' })
  }

  /**
   * Records a (checked) voucher and the receipt of the job it pays for, atomically. The channel's
   * `owed` grows by the receipt's amountDue; the voucher must cover it (UNDERPAID) and must not be
   * below the channel's latest voucher (NOT_INCREASING). A voucher equal to the latest one is
   * accepted while it still covers what is owed: a client that paid ahead for a job's worst case
   * (prompt + maxNewTokens) spends the difference on its next jobs. Recording the same jobId twice
   * changes nothing.
   */
  async recordPayment(
    voucher: SignedVoucher,
    receipt?: PaymentReceipt
  ): Promise<{ channel: Hex; increase: bigint; owed: bigint }> {
    const channel = channelKey(voucher.client, voucher.node, voucher.adapterId)
    return this.withLock(channel, async () => {
      const prev = await this.channels.get(channel)
      const prevAmount = prev ? BigInt(prev.latest.cumulativeAmount) : 0n
      const prevOwed = prev ? BigInt(prev.owed ?? '0') : 0n
      if (voucher.cumulativeAmount < prevAmount)
        throw new VoucherRejectedError('NOT_INCREASING', `cumulativeAmount must be at least ${prevAmount}`, {
          previous: prevAmount.toString()
        })
      const receiptKey = receipt
        ? `${channel}!${padAmount(voucher.cumulativeAmount)}!${receipt.jobId}`
        : undefined
      if (receiptKey && (await this.receipts.get(receiptKey)) !== undefined)
        return { channel, increase: 0n, owed: prevOwed }
      const owed = prevOwed + (receipt?.amountDue ?? 0n)
      if (voucher.cumulativeAmount < owed)
        throw new VoucherRejectedError(
          'UNDERPAID',
          `cumulativeAmount ${voucher.cumulativeAmount} does not cover ${owed} owed`,
          {
            needed: owed.toString()
          }
        )
      const rec: ChannelRecord = {
        channel,
        client: getAddress(voucher.client),
        node: getAddress(voucher.node),
        adapterId: voucher.adapterId,
        latest: voucherToJson(voucher),
        claimed: prev?.claimed ?? '0',
        owed: owed.toString(),
        updatedAt: Date.now()
      }
      // biome-ignore lint/suspicious/noExplicitAny: values of two sublevels with their own encodings
      const ops: AbstractBatchOperation<AnyLevel, string, any>[] = [
        { type: 'put', sublevel: this.channels, key: channel, value: rec }
      ]
      if (!prev)
        ops.push({ type: 'put', sublevel: this.byClient, key: `${rec.client}!${channel}`, value: '' })
      if (receipt && receiptKey) {
        const r: ReceiptRecord = {
          jobId: receipt.jobId,
          amountDue: receipt.amountDue.toString(),
          cumulativeAmount: voucher.cumulativeAmount.toString(),
          attribution: receipt.attribution,
          receipt: receipt.receipt
        }
        ops.push({ type: 'put', sublevel: this.receipts, key: receiptKey, value: r })
      }
      await this.db.batch(ops)
      return { channel, increase: voucher.cumulativeAmount - prevAmount, owed }
    })
  }

  async getChannel(channel: Hex): Promise<ChannelRecord | undefined> {
    return this.channels.get(channel)
  }

  async allChannels(): Promise<ChannelRecord[]> {
    return this.channels.values().all()
  }

  /** Channels whose latest voucher is above what the chain has paid and that are not quarantined. */
  async unclaimed(
    node?: Address
  ): Promise<{ record: ChannelRecord; voucher: SignedVoucher; unclaimed: bigint }[]> {
    const out = []
    for (const record of await this.allChannels()) {
      if (record.quarantined) continue
      if (node && record.node !== getAddress(node)) continue
      const latest = BigInt(record.latest.cumulativeAmount)
      const claimed = BigInt(record.claimed)
      if (latest > claimed)
        out.push({ record, voucher: voucherFromJson(record.latest), unclaimed: latest - claimed })
    }
    return out
  }

  /** What this node holds in vouchers from `client` that the chain has not paid yet. */
  async unclaimedFromClient(client: Address): Promise<bigint> {
    const who = getAddress(client)
    const keys = await this.byClient.keys({ gt: `${who}!`, lt: `${who}!~` }).all()
    const recs = await this.channels.getMany(keys.map((k) => k.slice(who.length + 1)))
    let sum = 0n
    for (const r of recs) {
      if (!r) continue
      const d = BigInt(r.latest.cumulativeAmount) - BigInt(r.claimed)
      if (d > 0n) sum += d
    }
    return sum
  }

  /** Moves the channel's claimed amount up to what the chain reports (never down). */
  async setClaimed(channel: Hex, claimed: bigint): Promise<void> {
    await this.withLock(channel, async () => {
      const rec = await this.channels.get(channel)
      if (!rec || BigInt(rec.claimed) >= claimed) return
      await this.channels.put(channel, { ...rec, claimed: claimed.toString(), updatedAt: Date.now() })
    })
  }

  async quarantine(channel: Hex, reason: string): Promise<void> {
    await this.withLock(channel, async () => {
      const rec = await this.channels.get(channel)
      if (rec) await this.channels.put(channel, { ...rec, quarantined: reason, updatedAt: Date.now() })
    })
  }

  /** Receipts paid by vouchers with cumulativeAmount in (fromExclusive, toInclusive]. */
  async receiptsFor(channel: Hex, fromExclusive: bigint, toInclusive: bigint): Promise<ReceiptRecord[]> {
    return this.receipts
      .values({
        gt: `${channel}!${padAmount(fromExclusive)}!~`,
        lte: `${channel}!${padAmount(toInclusive)}!~`
      })
      .all()
  }

  /** Keyed by creation time and root: two claims may well fund equal trees. */
  async savePool(p: PoolRecord): Promise<void> {
    await this.pools.put(`${String(p.createdAt).padStart(16, '0')}!${p.root}`, p)
  }

  async deletePool(p: Pick<PoolRecord, 'createdAt' | 'root'>): Promise<void> {
    await this.pools.del(`${String(p.createdAt).padStart(16, '0')}!${p.root}`)
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

  private async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => {})
    this.locks.set(key, tail)
    try {
      return await run
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key)
    }
  }
}
