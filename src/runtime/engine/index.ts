// Public surface of the serving engine.
export { DEFAULT_LIMITS, type EngineLimits, resolveLimits } from './config.ts'
export {
  Engine,
  type EngineComponents,
  type EngineInit,
  type EngineMetrics,
  type EngineModel,
  type EngineTokenizer
} from './engine.ts'
export { BusyError, EngineError, type EngineErrorCode, LimitExceededError } from './errors.ts'
export type { Sampler } from './runner.ts'
export type { ChatMessage, FinishReason, GenerateRequest, GenerationParams, TokenEvent } from './types.ts'
