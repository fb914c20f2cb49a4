// The narrow view of the serving engine and the node that the infer service uses, so the
// protocol can be tested with a stub engine and wired to the real one in the composition root.
// GenerateRequest / TokenEvent follow docs/INTERFACES.md ("Runtime → engine → protocol").
import type { SignedVoucher } from '../../chain/eip712.ts'
import type { Hex } from '../../crypto/hash.ts'
import type { AdapterTier } from '../routing/router.ts'
import type { ChatMessage, WireGenerationParams } from './codec.ts'
import type { Attribution } from './receipt.ts'

export interface GenerateRequest {
  model: string
  adapter?: string | null
  prompt?: string
  promptIds?: number[]
  messages?: ChatMessage[]
  params: WireGenerationParams
  signal?: AbortSignal
}

export type TokenEvent =
  | { type: 'token'; id: number; text: string; index: number; atMs: number }
  | {
      type: 'done'
      finishReason: 'stop' | 'length' | 'abort'
      promptIds: number[]
      outputIds: number[]
      text: string
      usage: { promptTokens: number; outputTokens: number }
      timings: { queuedMs: number; firstTokenMs: number; totalMs: number }
    }

export interface ServingBackend {
  /** base models this node serves */
  models(): { modelId: string; weightsHash: Hex }[]
  /** where an adapter sits on this node for that base model; null = not here */
  adapterTier(model: string, cid: string): AdapterTier | null | Promise<AdapterTier | null>
  /** queued + running jobs, and how many more the engine takes without queueing past its bound */
  load(): { queueDepth: number; freeSlots: number }
  generate(req: GenerateRequest): AsyncIterable<TokenEvent>
  /** prompt length in tokens before running it (for the max-prompt-tokens limit); optional */
  countPromptTokens?(req: GenerateRequest): number | Promise<number>
}

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
 * The chain layer's side of a paid job (src/chain/service.ts ChainService fits): check the
 * voucher before serving, store it with the receipt before replying (docs/CHAIN.md).
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
