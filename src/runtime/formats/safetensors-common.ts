// What the safetensors reader (safetensors.ts) and writers (safetensors-write.ts) share: the
// format's error and the element count of a shape. Apart from both so the reader can re-export
// the writers (its importers keep one path) without an import cycle.
import { OpenLoraError } from '../../common/errors.ts'

export class SafetensorsError extends OpenLoraError<'SAFETENSORS_INVALID'> {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('SAFETENSORS_INVALID', message, data)
  }
}

export function numel(shape: number[]): number {
  let n = 1
  for (const d of shape) n *= d
  return n
}
