// What the infer protocol asks of the layers beside it, per job: an adapter fetcher (the adapter
// exchange), an attribution provider (src/attribution) and a payment gate (src/chain). Narrow
// interfaces, so the protocol is tested with stubs and wired to the real ones in its extension.
import type { SignedVoucher } from '../../chain/eip712.ts'
import type { Hex } from '../../crypto/hash.ts'
import type { Attribution } from './receipt.ts'

/** Fetches an adapter by CID from one of `from` (peer ids), verifies it, stores it cold for `model`. */
export interface AdapterFetcher {
  fetch(cid: string, from: string[], opts?: { signal?: AbortSignal; model?: string }): Promise<void>
}

export interface AttributionContext {
  jobId: Hex
  modelHash: Hex
  adapter: string | null
  promptIds: number[]
  outputIds: number[]
}

/**
 * Adapter provenance until the attribution layer provides span proofs: the proof hash commits
 * to which base model and adapter produced the output; no datanet shares are claimed.
 */
export type AttributionProvider = (ctx: AttributionContext) => Attribution | Promise<Attribution>

/**
 * The chain layer's side of a paid job (src/chain/service.ts ChainService fits): open the job
 * (check the voucher, reserve its worst case) before any work, record tokens as they are sent,
 * finish it with the receipt before replying (docs/CHAIN.md).
 */
export interface PaymentGate {
  readonly domain: { chainId: number; settlement: `0x${string}` }
  checkVoucher(voucher: SignedVoucher, job: { adapterId: Hex; maxAmountDue: bigint }): Promise<unknown>
  /**
   * Checks the voucher and reserves the job's worst case before any work; the handle records
   * tokens as they are sent and ends the job (src/chain/service.ts ChainService.openJob).
   */
  openJob(
    voucher: SignedVoucher,
    job: { jobId: Hex; adapterId: Hex; maxAmountDue: bigint; promptTokens: number; pricePer1kTokens: bigint }
  ): Promise<{
    delivered(n: number): Promise<void>
    finish(receipt: {
      amountDue: bigint
      attribution?: { datanets: Attribution['datanets']; contributors: Attribution['contributors'] }
      receipt?: unknown
      digest?: Hex
    }): Promise<void>
    end(): Promise<void>
  }>
  recordPayment(
    voucher: SignedVoucher,
    receipt: {
      jobId: Hex
      amountDue: bigint
      attribution?: { datanets: Attribution['datanets']; contributors: Attribution['contributors'] }
      receipt?: unknown
    }
  ): Promise<unknown>
}
