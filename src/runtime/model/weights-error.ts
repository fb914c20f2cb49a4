// The error of a checkpoint or built model whose tensors are missing or malformed; its own file so
// build.ts and manifest.ts (which build.ts imports) both use it without a cycle.
import { OpenLoraError } from '../../common/errors.ts'

export class ModelWeightsError extends OpenLoraError<'MODEL_WEIGHTS_INVALID'> {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('MODEL_WEIGHTS_INVALID', message, details)
  }
}
