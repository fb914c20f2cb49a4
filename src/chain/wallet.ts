// The client's side of vouchers: one signed voucher per job. A voucher is a signed MAXIMUM for the
// channel: what the client owes the node for earlier jobs (the receipts' amountDue) plus the job's
// worst case (price × (prompt tokens + maxNewTokens)). The node claims only what the receipts
// owe, so the margin never leaves the client's escrow. After the receipt, `settle()` adds the
// job's real amountDue to what is owed: that sum is what the client has spent. Optionally
// persisted on a LevelDB sublevel so a restarted client never signs less than it did before (the
// node would refuse it).
import { type Address, getAddress, type Hex, type LocalAccount } from 'viem'
import { InvalidParametersError } from '../common/errors.ts'
import { type ChainDomain, type SignedVoucher, signVoucher } from './eip712.ts'
import type { AnyLevel } from './store.ts'
import { channelKey } from './vouchers.ts'

interface ChannelState {
  /** the highest cumulative amount signed on the channel */
  signed: string
  /** sum of the amountDue of the receipts received */
  owed: string
}

export interface VoucherJob {
  node: Address
  adapterId: Hex
  /** amountDue(promptTokens, maxNewTokens, pricePer1kTokens) */
  maxAmountDue: bigint
}

export class VoucherWallet {
  private readonly account: LocalAccount
  private readonly domain: ChainDomain
  private readonly state = new Map<Hex, ChannelState>()
  /** worst cases of this client's jobs in flight per channel: the node reserves them too (H1) */
  private readonly inflight = new Map<Hex, bigint>()
  private readonly db
  private loaded = false

  constructor(account: LocalAccount, domain: ChainDomain, opts: { db?: AnyLevel } = {}) {
    this.account = account
    this.domain = domain
    this.db = opts.db?.sublevel<string, ChannelState>('wallet', { valueEncoding: 'json' })
  }

  get address(): Address {
    return this.account.address
  }

  /**
   * Signs the voucher to send with a job: cumulative = max(last signed, owed + the worst cases of
   * the channel's jobs in flight + this one's). Call release() when the job ends, whatever the end.
   */
  async voucherFor(job: VoucherJob): Promise<SignedVoucher> {
    if (job.maxAmountDue < 0n) throw new InvalidParametersError('maxAmountDue must not be negative')
    const key = channelKey(this.account.address, getAddress(job.node), job.adapterId)
    const s = await this.get(key)
    const want = BigInt(s.owed) + (this.inflight.get(key) ?? 0n) + job.maxAmountDue
    const signed = BigInt(s.signed)
    const cumulative = want > signed ? want : signed
    if (cumulative === 0n) throw new InvalidParametersError('a free job (maxAmountDue 0) needs no voucher')
    const v = await signVoucher(this.account, this.domain, {
      node: getAddress(job.node),
      adapterId: job.adapterId,
      cumulativeAmount: cumulative
    })
    await this.put(key, { ...s, signed: cumulative.toString() })
    this.inflight.set(key, (this.inflight.get(key) ?? 0n) + job.maxAmountDue)
    return v
  }

  /** A job signed by voucherFor() ended (its receipt settled, or it failed): its worst case is free. */
  release(job: VoucherJob): void {
    const key = channelKey(this.account.address, getAddress(job.node), job.adapterId)
    const left = (this.inflight.get(key) ?? 0n) - job.maxAmountDue
    if (left > 0n) this.inflight.set(key, left)
    else this.inflight.delete(key)
  }

  /** Adds a served job's amountDue (from its verified receipt) to what the channel owes. */
  async settle(job: { node: Address; adapterId: Hex; amountDue: bigint }): Promise<void> {
    const key = channelKey(this.account.address, getAddress(job.node), job.adapterId)
    const s = await this.get(key)
    await this.put(key, { ...s, owed: (BigInt(s.owed) + job.amountDue).toString() })
  }

  /** signed: the channel's highest signed maximum; owed: its receipts' amountDue, what it spent */
  async channel(node: Address, adapterId: Hex): Promise<{ signed: bigint; owed: bigint }> {
    const s = await this.get(channelKey(this.account.address, getAddress(node), adapterId))
    return { signed: BigInt(s.signed), owed: BigInt(s.owed) }
  }

  /**
   * What the client has spent over all channels: the sum of the settled receipts' amountDue, which
   * is what the nodes can claim from its escrow (the signed maxima above it are never paid).
   */
  async spent(): Promise<bigint> {
    await this.load()
    let sum = 0n
    for (const s of this.state.values()) sum += BigInt(s.owed)
    return sum
  }

  private async load(): Promise<void> {
    if (this.loaded || !this.db) return
    for await (const [k, v] of this.db.iterator()) this.state.set(k as Hex, v)
    this.loaded = true
  }

  private async get(key: Hex): Promise<ChannelState> {
    await this.load()
    return this.state.get(key) ?? { signed: '0', owed: '0' }
  }

  private async put(key: Hex, s: ChannelState): Promise<void> {
    this.state.set(key, s)
    await this.db?.put(key, s)
  }
}
