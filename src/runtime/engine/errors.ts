// Named engine errors. BUSY and the limit errors cross the wire (the infer protocol turns them
// into error frames), so each has a code from a closed union and structured details.
import { OpenLoraError } from '../../common/errors.ts'

export type EngineErrorCode =
  | 'BUSY'
  | 'MODEL_NOT_FOUND'
  | 'INVALID_REQUEST'
  | 'LIMIT_EXCEEDED'
  | 'ENGINE_STOPPED'
  | 'STEP_FAILED'

export class EngineError extends OpenLoraError<EngineErrorCode> {}

/** The queue is full: the caller should retry after `retryAfterMs` or go to another node. */
export class BusyError extends EngineError {
  readonly retryAfterMs: number
  constructor(queued: number, maxQueued: number, retryAfterMs: number) {
    super(
      'BUSY',
      `the engine has ${queued} requests queued (limit engine.maxQueued = ${maxQueued}); retry in about ${retryAfterMs} ms or ask another node`,
      { queued, maxQueued, retryAfterMs }
    )
    this.retryAfterMs = retryAfterMs
  }
}

export class LimitExceededError extends EngineError {
  constructor(limit: string, value: number, max: number, reason: string) {
    super('LIMIT_EXCEEDED', `${limit} is ${value}; this node allows at most ${max} (${reason})`, {
      limit,
      value,
      max
    })
  }
}
