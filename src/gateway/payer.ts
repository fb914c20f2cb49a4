// The gateway's wallet for jobs that other nodes serve and charge for: the client's own JobPayer
// (src/client/payer.ts: same vouchers, terms checks and receipt settlement as `openlora infer
// --pay`) over a VoucherWallet kept in the node's LevelDB, signing with the `gateway.payer` key.
// It deposits into the Settlement escrow on demand, never more in total than `gateway.maxSpend`.
import { readFileSync } from 'node:fs'
import type { Address, Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { ChainClient } from '../chain/client.ts'
import type { ChainDomain } from '../chain/eip712.ts'
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

/** A JobPayer that keeps the escrow funded for what it signs, within a total budget. */
class BudgetedPayer extends JobPayer {
  readonly #chain: ChainClient
  readonly #maxSpend: bigint
  /** the highest maximum signed per channel (node, adapter) in this process */
  readonly #signed = new Map<string, bigint>()
  /** escrow per node channel as last read or deposited */
  readonly #deposited = new Map<Address, bigint>()
  /** what this gateway deposited, against gateway.maxSpend */
  #committed = 0n
  #lock: Promise<unknown> = Promise.resolve()

  constructor(
    wallet: VoucherWallet,
    domain: ChainDomain,
    chain: ChainClient,
    maxSpend: bigint,
    maxPrice?: bigint
  ) {
    super(wallet, domain, maxPrice === undefined ? {} : { maxPricePer1kTokens: maxPrice })
    this.#chain = chain
    this.#maxSpend = maxSpend
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

  /**
   * Every signed maximum must be covered by the escrow of its node's channel (escrow is per client
   * and node): deposit the difference there, as long as all committed escrow stays in the budget.
   */
  #fund(v: Record<string, unknown>): Promise<void> {
    const run = this.#lock.then(async () => {
      const node = String(v.node) as Address
      const key = `${node} ${String(v.adapterId)}`
      const amount = BigInt(String(v.cumulativeAmount))
      const prev = this.#signed.get(key) ?? 0n
      if (amount <= prev) return
      this.#signed.set(key, amount)
      let need = 0n
      let total = 0n
      for (const [k, a] of this.#signed) {
        total += a
        if (k.startsWith(`${node} `)) need += a
      }
      const deposited =
        this.#deposited.get(node) ?? (await this.#chain.escrowOf(this.wallet.address, node)).balance
      const more = need > deposited ? need - deposited : 0n
      if (this.#committed + more > this.#maxSpend) {
        this.#signed.set(key, prev)
        throw new BudgetExhaustedError(
          `paying this job needs ${more} wei more escrow; gateway.maxSpend ${this.#maxSpend} wei, ${this.#committed} already deposited`,
          { need: need.toString(), total: total.toString(), maxSpend: this.#maxSpend.toString() }
        )
      }
      if (more > 0n) {
        await this.#chain.deposit(more, { node })
        this.#committed += more
      }
      this.#deposited.set(node, deposited + more)
    })
    this.#lock = run.catch(() => {})
    return run
  }
}

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
    payer: new BudgetedPayer(wallet, domain, client, BigInt(cfg.maxSpend), maxPrice),
    address: account.address,
    close: async () => {}
  }
}
