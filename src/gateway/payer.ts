// The gateway's wallet for jobs that other nodes serve and charge for: the client's own JobPayer
// (src/client/payer.ts: same vouchers, terms checks and receipt settlement as `openlora infer
// --pay`) over a VoucherWallet kept in the node's LevelDB, signing with the `gateway.payer` key.
// It deposits into the Settlement escrow on demand, never more in total than `gateway.maxSpend`,
// counted in the LevelDB so that a restart does not start the count again.
import { readFileSync } from 'node:fs'
import { type Address, getAddress, type Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { ChainClient } from '../chain/client.ts'
import type { ChainDomain } from '../chain/eip712.ts'
import type { AnyLevel } from '../chain/store.ts'
import { channelKey } from '../chain/vouchers.ts'
import { VoucherWallet } from '../chain/wallet.ts'
import { JobPayer, type PayerJob } from '../client/payer.ts'
import { OpenLoraError } from '../common/errors.ts'
import type { Logger } from '../common/log.ts'
import type { NodeComponents } from '../common/service.ts'
import type { PaymentTerms } from '../protocols/infer/codec.ts'
import type { GatewayConfig } from './config.ts'

export class BudgetExhaustedError extends OpenLoraError<'BUDGET_EXHAUSTED'> {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('BUDGET_EXHAUSTED', message, data)
  }
}

/** What the gateway has committed, kept in the node's LevelDB so a restart keeps the budget. */
interface BudgetRecord {
  /** wei deposited by this gateway, ever, against gateway.maxSpend */
  committed: string
  /** the highest maximum signed per channel, `${node} ${adapterId}` → wei */
  signed: Record<string, string>
}

/**
 * A JobPayer that keeps the escrow funded for what it signs, within a total budget. The budget
 * and the signed maxima are persisted before each deposit: counted per process, every restart
 * could deposit gateway.maxSpend again.
 */
export class BudgetedPayer extends JobPayer {
  readonly #chain: ChainClient
  readonly #maxSpend: bigint
  readonly #db: AnyLevel
  #state: BudgetRecord | undefined
  #lock: Promise<unknown> = Promise.resolve()

  constructor(
    wallet: VoucherWallet,
    domain: ChainDomain,
    chain: ChainClient,
    opts: { maxSpend: bigint; maxPrice?: bigint; db: AnyLevel }
  ) {
    super(wallet, domain, opts.maxPrice === undefined ? {} : { maxPricePer1kTokens: opts.maxPrice })
    this.#chain = chain
    this.#maxSpend = opts.maxSpend
    this.#db = opts.db
  }

  /** Wei this gateway has deposited in all (persisted; never above gateway.maxSpend). */
  async committed(): Promise<bigint> {
    return BigInt((await this.#load()).committed)
  }

  override async voucherFor(target: string, job: PayerJob): Promise<Record<string, unknown> | null> {
    const v = await super.voucherFor(target, job)
    if (v) await this.#fund(v)
    return v
  }

  override async voucherForTerms(
    target: string,
    job: PayerJob,
    terms: PaymentTerms,
    jobId: string
  ): Promise<Record<string, unknown>> {
    const v = await super.voucherForTerms(target, job, terms, jobId)
    await this.#fund(v)
    return v
  }

  async #load(): Promise<BudgetRecord> {
    if (this.#state) return this.#state
    const raw = await this.#db.get(BUDGET_KEY)
    this.#state = raw === undefined ? { committed: '0', signed: {} } : (JSON.parse(raw) as BudgetRecord)
    return this.#state
  }

  async #save(state: BudgetRecord): Promise<void> {
    await this.#db.put(BUDGET_KEY, JSON.stringify(state))
    this.#state = state
  }

  /**
   * Every signed maximum must be covered by the escrow of its node's channel (escrow is per client
   * and node): what the node can still claim is each channel's signed maximum less what the chain
   * has paid on it; deposit the difference with the escrow there, as long as everything deposited
   * stays within the budget.
   */
  #fund(v: Record<string, unknown>): Promise<void> {
    const run = this.#lock.then(async () => {
      const node = getAddress(String(v.node))
      const key = `${node} ${String(v.adapterId).toLowerCase()}`
      const amount = BigInt(String(v.cumulativeAmount))
      const state = await this.#load()
      if (amount <= BigInt(state.signed[key] ?? '0')) return
      const signed = { ...state.signed, [key]: amount.toString() }
      const mine = Object.entries(signed).filter(([k]) => k.startsWith(`${node} `))
      const block = await this.#chain.blockNumber()
      const claimed = await this.#chain.claimedOfMany(
        mine.map(([k]) => channelKey(this.wallet.address, node, k.slice(node.length + 1) as Hex))
      )
      const exposure = mine.reduce((sum, [, a], i) => sum + BigInt(a) - (claimed[i] ?? 0n), 0n)
      const balance = (await this.#chain.escrowOf(this.wallet.address, node, block)).balance
      const more = exposure > balance ? exposure - balance : 0n
      const committed = BigInt(state.committed)
      if (committed + more > this.#maxSpend)
        throw new BudgetExhaustedError(
          `paying this job needs ${more} wei more escrow; gateway.maxSpend ${this.#maxSpend} wei, ${committed} already deposited`,
          { need: exposure.toString(), maxSpend: this.#maxSpend.toString(), committed: committed.toString() }
        )
      // counted before the deposit is sent: a crash after sending must not free the budget
      await this.#save({ committed: (committed + more).toString(), signed })
      if (more === 0n) return
      try {
        await this.#chain.deposit(more, { node })
      } catch (err) {
        await this.#save({ ...state, committed: committed.toString() })
        throw err
      }
    })
    this.#lock = run.catch(() => {})
    return run
  }
}

const BUDGET_KEY = 'budget'

export interface GatewayPayer {
  payer: JobPayer
  address: Address
  close(): Promise<void>
}

/** Opens the payer once the chain service runs (it knows the endpoint only after start). */
export async function openPayer(
  cfg: GatewayConfig,
  components: NodeComponents,
  log: Logger
): Promise<GatewayPayer> {
  const chain = components.services.chain
  if (!chain)
    throw new OpenLoraError(
      'INVALID_CONFIG',
      'gateway.payer is set but the node runs no chain (set chain.preset) to pay on'
    )
  const hex = readFileSync(cfg.payer, 'utf8').trim()
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex))
    throw new OpenLoraError(
      'INVALID_CONFIG',
      `gateway.payer ${cfg.payer} must hold 0x followed by 64 hex digits`
    )
  const account = privateKeyToAccount(hex as Hex)
  const endpoint = chain.endpoint
  const domain: ChainDomain = { chainId: endpoint.chainId, settlement: endpoint.addresses.settlement }
  const wallet = new VoucherWallet(account, domain, { db: components.db.sublevel('gateway-wallet') })
  const client = new ChainClient({ ...endpoint, account: hex as Hex })
  const maxPrice = cfg.maxPricePer1kTokens === '' ? undefined : BigInt(cfg.maxPricePer1kTokens)
  log.info('gateway pays routed jobs', { payer: account.address, maxSpend: cfg.maxSpend })
  return {
    payer: new BudgetedPayer(wallet, domain, client, {
      maxSpend: BigInt(cfg.maxSpend),
      ...(maxPrice === undefined ? {} : { maxPrice }),
      db: components.db.sublevel<string, string>('gateway-budget', { valueEncoding: 'utf8' })
    }),
    address: account.address,
    close: async () => {}
  }
}
