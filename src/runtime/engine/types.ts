// The engine's public request and event types, exactly as docs/INTERFACES.md states them.

// Params and events are the runtime's own (src/runtime/generate.ts), so the one-request path and
// the engine can never drift apart.
import type { GenerationParams } from '../generate.ts'

export type { FinishReason, GenerationParams, TokenEvent } from '../generate.ts'

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
