import { OpenLoraError } from '../../common/errors.ts'

export type AdapterFetchErrorCode = 'ADAPTER_NOT_FOUND' | 'ADAPTER_VERIFY_FAILED'

/** Fetching an adapter from peers failed; `data.attempts` says what each peer did wrong. */
export class AdapterFetchError extends OpenLoraError<AdapterFetchErrorCode> {}
