// Errors of the serving stack. Codes are those of the infer wire (protocols/infer/errors.ts maps an
// error by its code), so a front-end passes them on unchanged without the stack knowing about it.
import { OpenLoraError } from '../common/errors.ts'

export class ServingError extends OpenLoraError<'MODEL_NOT_FOUND'> {}
