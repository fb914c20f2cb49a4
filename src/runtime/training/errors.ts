// The training input error on its own, so modules that trainer.ts imports (lora.ts) can throw it
// without an import cycle; trainer.ts re-exports it where its callers look for it.
import { OpenLoraError } from '../../common/errors.ts'

export class TrainingInputError extends OpenLoraError<'TRAINING_INPUT_INVALID'> {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('TRAINING_INPUT_INVALID', message, details)
  }
}
