import { OpenLoraError } from '../../common/errors.ts'

export type DatanetFetchErrorCode =
  | 'DATANET_NOT_FOUND'
  | 'DATANET_VERIFY_FAILED'
  | 'DATANET_BUSY'
  | 'DATANET_UNTRUSTED'

/** Copying a datanet version (or a pools file) from peers failed; `data.attempts` says what each peer did. */
export class DatanetFetchError extends OpenLoraError<DatanetFetchErrorCode> {}
