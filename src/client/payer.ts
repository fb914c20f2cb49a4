// The client's side of paid jobs: which voucher goes with a job. The first job through an entry
// peer goes without one; a node that charges answers PAYMENT_REQUIRED with its terms (operator,
// price, the job's worst-case amount, EIP-712 domain, all signed by the operator: H4), the payer
// signs a voucher for them with its VoucherWallet and the client resends, with the accepted terms
// in its signed request. Later jobs through the same entry reuse the terms and
// estimate the worst case themselves; an UNDERPAID answer (the node counted more prompt tokens)
// brings the exact amount and one more resend. A voucher signs a maximum (owed + the job's worst
// case); the node claims only what the receipts owe. After a verified receipt, settle() adds its
// real amountDue to what the channel owes: that is what the client spent (`spent()`), and the
// margin signed ahead covers the next job without ever leaving the escrow.
import type { Address, Hex } from 'viem'
import type { ChainDomain } from '../chain/eip712.ts'
import { termsJobId, verifyTermsSignature, voucherHash, voucherToJson } from '../chain/eip712.ts'
import type { VoucherJob, VoucherWallet } from '../chain/wallet.ts'
import { OpenLoraError } from '../common/errors.ts'
import type { AcceptedTerms, PaymentTerms } from '../protocols/infer/codec.ts'
import { adapterIdOf, amountDueFor, type Receipt } from '../protocols/infer/receipt.ts'

/** The payer will not sign what the node asks (another chain, or a price above the client's cap). */
export class PaymentRefusedError extends OpenLoraError<'PAYMENT_REFUSED'> {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('PAYMENT_REFUSED', message, data)
  }
}

export interface PayerJob {
  model: string
  adapter?: string | null
  prompt?: string
  promptIds?: number[]
  messages?: { role: string; content: string }[]
  params: { maxNewTokens: number }
}

export interface PayerOptions {
  /** the most the client pays, wei per 1k tokens; default: no cap */
  maxPricePer1kTokens?: bigint
  /**
   * What the chain has paid `node` on the client's channel (ChainClient.claimedOf). When given,
   * the payer checks it before signing for a node: a node that claimed more than the receipts and
   * statements it signed owe this client overcharged (it claimed a margin it did not earn,
   * THREATS.md T2) and is not paid again.
   */
  claimedOf?: (node: Address, adapterId: Hex) => Promise<bigint>
}

interface KnownTerms {
  operator: Address
  pricePer1kTokens: string
}

/** Prompt tokens can never exceed its UTF-8 bytes (byte-level BPE) plus a chat template's tokens. */
const TEMPLATE_TOKENS = 64

function promptTokenBound(job: PayerJob): number {
  if (job.promptIds) return job.promptIds.length
  const enc = new TextEncoder()
  const bytes =
    (job.prompt ? enc.encode(job.prompt).length : 0) +
    (job.messages ?? []).reduce((n, m) => n + enc.encode(m.content).length + 8, 0)
  return bytes + TEMPLATE_TOKENS
}

export class JobPayer {
  readonly wallet: VoucherWallet
  readonly domain: ChainDomain
  readonly #maxPrice: bigint | undefined
  readonly #claimedOf: PayerOptions['claimedOf']
  /** terms last seen per entry peer, model and adapter (the serving node depends on all three) */
  readonly #terms = new Map<string, KnownTerms>()
  /** the job each voucher signed for (by signature), until the job ends */
  readonly #open = new Map<string, VoucherJob & { price: string }>()
  /** operators whose receipt broke the terms the client signed: never paid again (H4) */
  readonly #distrusted = new Set<string>()

  constructor(wallet: VoucherWallet, domain: ChainDomain, opts: PayerOptions = {}) {
    this.wallet = wallet
    this.domain = domain
    this.#maxPrice = opts.maxPricePer1kTokens
    this.#claimedOf = opts.claimedOf
  }

  /** The voucher to send with a job before any answer: null when this route's terms are unknown. */
  async voucherFor(target: string, job: PayerJob): Promise<Record<string, unknown> | null> {
    const t = this.#terms.get(this.#key(target, job))
    if (!t || BigInt(t.pricePer1kTokens) === 0n || this.#distrusted.has(t.operator.toLowerCase())) return null
    const maxAmountDue = BigInt(
      amountDueFor(promptTokenBound(job), job.params.maxNewTokens, t.pricePer1kTokens)
    )
    await this.#audit(t.operator, adapterIdOf(job.adapter ?? null))
    return this.#sign(t.operator, job, maxAmountDue, t.pricePer1kTokens)
  }

  /** Signs a voucher for the terms a node sent with PAYMENT_REQUIRED (after checking them). */
  async voucherForTerms(
    target: string,
    job: PayerJob,
    terms: PaymentTerms,
    /** the job id of the request the node refused: its terms name it */
    jobId: string
  ): Promise<Record<string, unknown>> {
    // H4: terms come back through every peer on the route; only the operator's own signature over
    // them (for this job, chain and contract) shows that no one changed the price, the worst case
    // or the operator on the way
    const signed =
      terms.jobId !== undefined &&
      terms.signature !== undefined &&
      terms.jobId === jobId.toLowerCase() &&
      (await verifyTermsSignature(
        this.domain,
        {
          operator: terms.operator as Address,
          jobId: termsJobId(terms.jobId),
          pricePer1kTokens: BigInt(terms.pricePer1kTokens),
          maxAmountDue: BigInt(terms.maxAmountDue)
        },
        terms.signature
      ))
    if (!signed)
      throw new PaymentRefusedError(
        `the payment terms are not signed by their operator ${terms.operator} for job ${jobId}: a peer on the route changed them`,
        { terms }
      )
    if (this.#distrusted.has(terms.operator.toLowerCase()))
      throw new PaymentRefusedError(
        `operator ${terms.operator} charged more than the terms this client signed; it is not paid again`,
        { terms }
      )
    await this.#audit(terms.operator as Address, adapterIdOf(job.adapter ?? null), terms)
    if (
      terms.chainId !== this.domain.chainId ||
      terms.settlement.toLowerCase() !== this.domain.settlement.toLowerCase()
    )
      throw new PaymentRefusedError(
        `the node wants vouchers for chain ${terms.chainId} / Settlement ${terms.settlement}; this wallet pays on chain ${this.domain.chainId} / ${this.domain.settlement}`,
        { terms }
      )
    const price = BigInt(terms.pricePer1kTokens)
    if (this.#maxPrice !== undefined && price > this.#maxPrice)
      throw new PaymentRefusedError(
        `the node charges ${price} wei per 1k tokens; this client pays at most ${this.#maxPrice}`,
        { terms }
      )
    // H4: the node's worst case is signed only up to what the job can cost at its price, by the
    // client's own bound on its prompt: terms that ask to reserve more (a relay rewrote them, or
    // the node overcounts) are refused, never signed
    const ask = BigInt(terms.maxAmountDue)
    const bound = BigInt(amountDueFor(promptTokenBound(job), job.params.maxNewTokens, terms.pricePer1kTokens))
    if (ask > bound)
      throw new PaymentRefusedError(
        `the node asks to reserve ${ask} wei for this job; at ${price} wei per 1k tokens it can cost at most ${bound}`,
        { terms }
      )
    this.#terms.set(this.#key(target, job), {
      operator: terms.operator,
      pricePer1kTokens: terms.pricePer1kTokens
    })
    return this.#sign(terms.operator, job, ask, terms.pricePer1kTokens)
  }

  /**
   * Why a paid receipt does not match the terms its voucher accepted (H4), or undefined: it must
   * name the voucher's operator and the accepted price, and owe exactly amountDue(prompt, output,
   * price), never above the job's signed worst case.
   */
  receiptMismatch(
    voucher: Record<string, unknown>,
    receipt: Receipt
  ): { field: string; message: string } | undefined {
    const job = this.#open.get(String(voucher.signature))
    if (!job) return undefined
    const found = this.#mismatch(job, receipt)
    // an operator that breaks the terms it was paid under can claim up to the voucher's signed
    // worst case (docs/THREATS.md H4): that is the most it takes, once
    if (found) this.#distrusted.add(job.node.toLowerCase())
    return found
  }

  /**
   * Why a training job's payment statement breaks the terms its voucher accepted (the operator
   * is then not paid again, H4), or undefined: the voucher's operator, the accepted price, and
   * exactly ceil(trainedTokens × price / 1000), never above the job's signed worst case.
   */
  statementMismatch(
    voucher: Record<string, unknown>,
    s: { operator: string; pricePer1kTokens: string; amountDue: string; trainedTokens: number }
  ): string | undefined {
    const job = this.#open.get(String(voucher.signature))
    if (!job) return 'no open job was paid with this voucher'
    const due = BigInt(amountDueFor(0, s.trainedTokens, job.price))
    const why =
      s.operator.toLowerCase() !== job.node.toLowerCase()
        ? `the statement names operator ${s.operator}, the voucher paid ${job.node}`
        : s.pricePer1kTokens !== job.price
          ? `the statement charges ${s.pricePer1kTokens} wei per 1k tokens, the accepted price is ${job.price}`
          : BigInt(s.amountDue) !== due || due > job.maxAmountDue
            ? `the statement owes ${s.amountDue} wei; ${s.trainedTokens} trained tokens at the accepted price owe ${due}, at most ${job.maxAmountDue}`
            : undefined
    if (why) this.#distrusted.add(job.node.toLowerCase())
    return why
  }

  /** The terms this client accepted with a voucher it signed, to sign with the request (H4). */
  termsOf(voucher: Record<string, unknown>): AcceptedTerms | undefined {
    const job = this.#open.get(String(voucher.signature))
    return job && { operator: job.node, pricePer1kTokens: job.price }
  }

  #mismatch(
    job: VoucherJob & { price: string },
    receipt: Receipt
  ): { field: string; message: string } | undefined {
    const b = receipt.body
    if (b.operator.toLowerCase() !== job.node.toLowerCase())
      return {
        field: 'body.operator',
        message: `the receipt names operator ${b.operator}, the voucher paid ${job.node}`
      }
    if (b.pricePer1kTokens !== job.price)
      return {
        field: 'body.pricePer1kTokens',
        message: `the receipt charges ${b.pricePer1kTokens} wei per 1k tokens, the accepted price is ${job.price}`
      }
    const due = BigInt(amountDueFor(b.promptTokens, b.outputTokens, job.price))
    if (BigInt(b.amountDue) !== due || due > job.maxAmountDue)
      return {
        field: 'body.amountDue',
        message: `the receipt owes ${b.amountDue} wei; its tokens at the accepted price owe ${due}, at most ${job.maxAmountDue}`
      }
    return undefined
  }

  /** The voucher hash a receipt paid with this wire voucher must carry. */
  hashOf(voucher: Record<string, unknown>): Hex {
    const v = voucher as { client: Address; node: Address; adapterId: Hex; cumulativeAmount: string }
    return voucherHash(this.domain, { ...v, cumulativeAmount: BigInt(v.cumulativeAmount) })
  }

  /** What the client has spent: the sum of its settled receipts' amountDue (what nodes can claim). */
  spent(): Promise<bigint> {
    return this.wallet.spent()
  }

  /** Adds a verified paid receipt's amountDue to its channel's debt. */
  async settle(receipt: Receipt): Promise<void> {
    const b = receipt.body
    if (b.voucher === null || BigInt(b.amountDue) === 0n) return
    await this.wallet.settle({
      node: b.operator as Address,
      adapterId: adapterIdOf(b.adapter),
      amountDue: BigInt(b.amountDue)
    })
  }

  /**
   * The job a voucher paid for ended. `receipt`: its verified receipt (its amountDue is owed).
   * Without one, `started` says whether the node began serving it (an abort, a lost connection, a
   * timeout after `accepted`): the node is owed what it delivered, at most the job's worst case,
   * and the client cannot know how much, so it counts the worst case as spent (its next voucher
   * then covers what the node recorded). A job refused before `accepted` costs nothing.
   */
  async ended(
    voucher: Record<string, unknown>,
    /** amountDue: what a checked training statement owes (a job without an infer receipt) */
    outcome: { receipt?: Receipt; amountDue?: bigint; started: boolean }
  ): Promise<void> {
    const sig = String(voucher.signature)
    const open = this.#open.get(sig)
    if (!open) return
    this.#open.delete(sig)
    const { price: _price, ...job } = open
    this.wallet.release(job)
    if (outcome.receipt) await this.settle(outcome.receipt)
    else if (outcome.amountDue !== undefined) {
      if (outcome.amountDue > 0n) await this.wallet.settle({ ...job, amountDue: outcome.amountDue })
    } else if (outcome.started && job.maxAmountDue > 0n)
      await this.wallet.settle({ ...job, amountDue: job.maxAmountDue })
  }

  /** Refuses (and distrusts) a node the chain paid more on this channel than the client owes it. */
  async #audit(node: Address, adapterId: Hex, terms?: PaymentTerms): Promise<void> {
    if (!this.#claimedOf) return
    const claimed = await this.#claimedOf(node, adapterId)
    const { owed } = await this.wallet.channel(node, adapterId)
    if (claimed <= owed) return
    this.#distrusted.add(node.toLowerCase())
    throw new PaymentRefusedError(
      `operator ${node} has claimed ${claimed} wei on-chain from this client's channel; its receipts and statements owe ${owed}: it is not paid again`,
      { claimed: claimed.toString(), owed: owed.toString(), ...(terms ? { terms } : {}) }
    )
  }

  async #sign(
    operator: Address,
    job: PayerJob,
    maxAmountDue: bigint,
    price: string
  ): Promise<Record<string, unknown>> {
    const vj: VoucherJob = { node: operator, adapterId: adapterIdOf(job.adapter ?? null), maxAmountDue }
    const v = await this.wallet.voucherFor(vj)
    this.#open.set(v.signature, { ...vj, price })
    return voucherToJson(v) as unknown as Record<string, unknown>
  }

  #key(target: string, job: PayerJob): string {
    return `${target} ${job.model} ${job.adapter ?? ''}`
  }
}
