// The narrow view of the serving stack that its front-ends (the infer protocol, later the HTTP
// gateway and training) use, so a front-end can be tested with a stub engine and wired to the real
// one in the composition root. Requests and events are the engine's own (docs/INTERFACES.md
// "Runtime → engine → protocol"); a front-end's wire parameters are checked to fit them.
import type { Hex } from '../crypto/hash.ts'
import type { GenerateRequest, TokenEvent } from '../runtime/engine/types.ts'
import type { AdapterTier } from './capability.ts'

export type { GenerateRequest, TokenEvent }

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
