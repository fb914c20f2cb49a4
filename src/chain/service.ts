// The chain layer as one node service: connects to the configured chain (or, for the `local`
// preset, starts anvil and deploys), opens the VoucherStore on a sublevel of the node's LevelDB
// and runs the Claimer. The node composition root builds it with the operator account and the
// db; the infer protocol calls checkVoucher() before serving a paid job and recordPayment()
// before replying. See docs/CHAIN.md for the wiring.
import { type Hex, type LocalAccount, zeroHash } from 'viem'
import { createLogger, type Logger } from '../common/log.ts'
import { type LocalChain, startLocalChain } from './anvil.ts'
import { Claimer, type ClaimerInit } from './claimer.ts'
import { ChainClient } from './client.ts'
import { type ChainConfig, type ChainEndpoint, parseChainConfig } from './config.ts'
import type { ChainDomain, SignedVoucher } from './eip712.ts'
import { ChainConfigError, VoucherRejectedError } from './errors.ts'
import { publishedPools, writePublishedPools } from './published-pools.ts'
import { type RewardsSummary, rewardsSummary } from './rewards.ts'
import { type AnyLevel, type PaymentReceipt, type ReserveInput, VoucherStore } from './store.ts'
import { chainStateReader, channelKey, checkVoucher, type VoucherCheckResult } from './vouchers.ts'

export interface ChainServiceInit {
  /** a `chain` config section (validated here); `{ preset: 'local' }` when absent */
  chain?: ChainConfig | unknown
  claimer?: ClaimerInit
  /** ETH given to the operator on a local chain so that it can pay for claims */
  localOperatorEth?: bigint
  /** where to publish the funded contributor pools (M1; the node: <dataDir>/pools.json) */
  poolsFile?: string
  /** fsync each payment batch (config chain.syncWrites; VoucherStore) */
  syncWrites?: boolean
}

export interface ChainServiceComponents {
  /** the node's LevelDB (or any abstract-level); the service uses its sublevel 'chain' */
  db: AnyLevel
  /** the operator's secp256k1 account: receives rewards, signs claims */
  operator: LocalAccount
  logger?: Logger
}

/** A paid job from its reservation to its end (docs/CHAIN.md "Paid jobs"). */
export interface PaidJob {
  /** records that n tokens are owed: call before sending token n (1-based count) */
  delivered(n: number): Promise<void>
  /** the job finished: its receipt's amountDue is owed; resolve before sending the result */
  finish(receipt: Omit<PaymentReceipt, 'jobId'>): Promise<void>
  /** the job ended otherwise (abort, error, timeout): what it delivered is owed */
  end(): Promise<void>
}

export class ChainService {
  private readonly init: ChainServiceInit
  private readonly components: ChainServiceComponents
  private readonly log: Logger
  private local: LocalChain | undefined
  private rpcUrl = ''
  private _client: ChainClient | undefined
  private _claimer: Claimer | undefined
  readonly store: VoucherStore
  /** adapters seen registered on-chain (a registration is never undone) */
  private readonly registered = new Set<Hex>()

  constructor(init: ChainServiceInit, components: ChainServiceComponents) {
    this.init = init
    this.components = components
    this.log = components.logger ?? createLogger('chain')
    this.store = new VoucherStore(components.db.sublevel('chain'), { sync: init.syncWrites === true })
  }

  get client(): ChainClient {
    if (!this._client) throw new ChainConfigError('the chain service has not started')
    return this._client
  }

  get claimer(): Claimer {
    if (!this._claimer) throw new ChainConfigError('the chain service has not started')
    return this._claimer
  }

  /** the anvil this service started (`local` preset only): dev accounts, clock */
  get localChain(): LocalChain | undefined {
    return this.local
  }

  /** What receipts' EIP-712 domain binds to (chain id and Settlement address). */
  get domain(): ChainDomain {
    return this.client.domain
  }

  get endpoint(): ChainEndpoint {
    return {
      rpcUrl: this.rpcUrl,
      chainId: this.client.chainId,
      addresses: this.client.addresses
    }
  }

  async start(): Promise<void> {
    const cfg = parseChainConfig(this.init.chain)
    const operator = this.components.operator
    let endpoint: ChainEndpoint
    if (cfg.preset === 'local') {
      this.local = await startLocalChain({
        withdrawalDelaySec: cfg.withdrawalDelaySec,
        logger: this.log.child('anvil')
      })
      endpoint = this.local
      await this.local.setEthBalance(operator.address, this.init.localOperatorEth ?? 10n ** 20n)
    } else {
      endpoint = cfg
    }
    this.rpcUrl = endpoint.rpcUrl
    this._client = new ChainClient({ ...endpoint, account: operator })
    // L1: a client that asks to withdraw must find every voucher claimed before the delay ends;
    // the node claims at least twice per delay
    const interval = this.init.claimer?.claimIntervalSec ?? 300
    const delay = Number(await this._client.withdrawalDelay())
    if (interval * 2 > delay) {
      await this.local?.stop()
      throw new ChainConfigError(
        `chain.claimIntervalSec (${interval} s) must be at most half the Settlement's withdrawal delay (${delay} s), so every voucher is claimed before a client can withdraw`,
        { key: 'chain.claimIntervalSec' }
      )
    }
    this._claimer = new Claimer(
      { chain: this._client, store: this.store },
      {
        logger: this.log.child('claimer'),
        ...this.init.claimer,
        ...(this.init.poolsFile ? { onPoolsFunded: () => this.publishPools() } : {})
      }
    )
    // jobs in flight when the node last stopped are owed what they delivered before it did
    const abandoned = await this.store.settleAbandoned()
    if (abandoned > 0) this.log.warn('settled jobs cut off by the last stop', { jobs: abandoned })
    await this._claimer.start()
    // the pools funded before this start are published at once (M1)
    await this.publishPools().catch((err) => this.log.warn('publishing the funded pools failed', { err }))
    this.log.info('chain service started', {
      chainId: endpoint.chainId,
      settlement: endpoint.addresses.settlement,
      operator: operator.address
    })
  }

  async stop(): Promise<void> {
    await this._claimer?.stop()
    await this.local?.stop()
  }

  /** Throws VoucherRejectedError with a code when the voucher does not pay for this job. */
  checkVoucher(
    voucher: SignedVoucher,
    job: { adapterId: Hex; maxAmountDue: bigint }
  ): Promise<VoucherCheckResult> {
    return checkVoucher(this.client, this.store, {
      voucher,
      node: this.components.operator.address,
      adapterId: job.adapterId,
      maxAmountDue: job.maxAmountDue
    })
  }

  /**
   * Opens a paid job before any work: the voucher check, the adapter's registration (a claim for
   * an unregistered adapter would never pay, H3), then the job's worst case reserved against the
   * channel and the client's escrow at this node, with its job id used up (C2, H1). The returned
   * PaidJob records tokens as they go out (H2).
   */
  async openJob(voucher: SignedVoucher, job: ReserveInput & { adapterId: Hex }): Promise<PaidJob> {
    await this.checkVoucher(voucher, {
      adapterId: job.adapterId,
      maxAmountDue: job.maxAmountDue
    })
    await this.requireRegistered(job.adapterId)
    // read again under the client's lock, at one block: the check above is only a quick refusal,
    // and a claim mined since then has moved both the escrow and what the chain paid
    const { channel } = await this.store.reserve(voucher, job, chainStateReader(this.client, voucher))
    return {
      delivered: (n) => this.store.delivered(channel, job.jobId, n),
      finish: async (receipt) => {
        await this.store.settle(channel, job.jobId, receipt)
        this._claimer?.notify()
      },
      end: async () => {
        await this.store.settle(channel, job.jobId)
        this._claimer?.notify()
      }
    }
  }

  /** Writes every funded pool with its leaves to `poolsFile` (docs/CHAIN.md "Published pools"). */
  async publishPools(): Promise<void> {
    if (!this.init.poolsFile) return
    await writePublishedPools(this.init.poolsFile, await publishedPools(this.store, this.domain))
  }

  /** Throws UNKNOWN_ADAPTER unless the adapter is registered on-chain (zero: the base model). */
  async requireRegistered(adapterId: Hex): Promise<void> {
    const id = adapterId.toLowerCase() as Hex
    if (id === zeroHash || this.registered.has(id)) return
    const owner = await this.client.adapterOwner(id)
    if (BigInt(owner) === 0n)
      throw new VoucherRejectedError(
        'UNKNOWN_ADAPTER',
        `adapter ${id} is not registered on-chain: a paid job for it could never be claimed; its owner must register it first`
      )
    this.registered.add(id)
  }

  /** Stores the voucher and the job's receipt; resolve this before replying to the client. */
  async recordPayment(
    voucher: SignedVoucher,
    receipt: PaymentReceipt
  ): Promise<{ channel: Hex; increase: bigint; owed: bigint }> {
    // a channel this store has never seen (a fresh data dir) starts from what the chain has paid
    const known = await this.store.getChannel(channelKey(voucher.client, voucher.node, voucher.adapterId))
    const baseline = known
      ? undefined
      : await this.client.claimedOf(voucher.client, voucher.node, voucher.adapterId)
    const r = await this.store.recordPayment(voucher, receipt, { baseline })
    this._claimer?.notify()
    return r
  }

  rewards(): Promise<RewardsSummary> {
    return rewardsSummary(this.client, this.components.operator.address, { store: this.store })
  }
}
