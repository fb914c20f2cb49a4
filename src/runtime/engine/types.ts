// The engine's public request and event types, exactly as docs/INTERFACES.md states them.

export interface GenerationParams {
  /** ≤ engine.maxNewTokens */
  maxNewTokens: number
  /** 0 or absent = greedy */
  temperature?: number
  topK?: number
  topP?: number
  /** same seed + same inputs = same tokens */
  seed?: number
  /** in addition to the model's eos ids */
  stopTokenIds?: number[]
  stopStrings?: string[]
}

export type ChatMessage = { role: 'system' | 'user' | 'assistant'; content: string }

export interface GenerateRequest {
  /** modelId */
  model: string
  /** adapter CID; null or absent = the base model alone */
  adapter?: string | null
  /** exactly one of prompt, promptIds, messages */
  prompt?: string
  promptIds?: number[]
  messages?: ChatMessage[]
  params: GenerationParams
  signal?: AbortSignal
}

export type FinishReason = 'stop' | 'length' | 'abort'

export type TokenEvent =
  | { type: 'token'; id: number; text: string; index: number; atMs: number }
  | {
      type: 'done'
      finishReason: FinishReason
      promptIds: number[]
      outputIds: number[]
      text: string
      usage: { promptTokens: number; outputTokens: number }
      /** ms from generate(): to admission into a batch row, to the first token, to the end */
      timings: { queuedMs: number; firstTokenMs: number; totalMs: number }
    }
