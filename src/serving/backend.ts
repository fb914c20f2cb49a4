// The narrow view of the serving stack that its front-ends (the infer protocol, later the HTTP
// gateway and training) use, so a protocol can be tested with a stub engine and wired to the real
// one in the composition root. GenerateRequest / TokenEvent follow docs/INTERFACES.md
// ("Runtime → engine → protocol"); the parameter shapes are the infer wire's, defined here so the
// serving layer needs nothing above it.
import type { Hex } from '../crypto/hash.ts'
import type { ChatMessage } from '../runtime/tokenizer.ts'
import type { AdapterTier } from './capability.ts'

export type { ChatMessage }

export interface WireGenerationParams {
  maxNewTokens: number
  temperature?: number
  topK?: number
  topP?: number
  seed?: number
  stopTokenIds?: number[]
  stopStrings?: string[]
}

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
