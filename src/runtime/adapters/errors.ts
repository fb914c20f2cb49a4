// Named errors of the adapter tiers. Codes cross the wire (the infer protocol maps them to its
// error frames), so they come from a closed union and carry the CID in `data`.
import { OpenLoraError } from '../../common/errors.ts'

export type AdapterStoreErrorCode =
  | 'ADAPTER_NOT_FOUND'
  | 'ADAPTER_INVALID'
  | 'ADAPTER_BASE_MISMATCH'
  | 'ADAPTER_RANK_TOO_LARGE'
  | 'ADAPTER_TARGET_UNSUPPORTED'
  | 'ADAPTER_TOO_LARGE'
  | 'ADAPTER_CID_MISMATCH'
  | 'NO_FREE_SLOT'
  | 'STORE_CLOSED'
  | 'STORE_LOCKED'

export class AdapterStoreError extends OpenLoraError<AdapterStoreErrorCode> {}

export class AdapterNotFoundError extends AdapterStoreError {
  constructor(cid: string) {
    super(
      'ADAPTER_NOT_FOUND',
      `adapter ${cid} is not registered on this node; import it first (openlora adapter add DIR) or fetch it by CID from a peer`,
      { cid }
    )
  }
}

/**
 * Every slot of the pool is held by a running sequence. Not a failure of the adapter: the
 * caller may retry once a sequence finishes, so it carries a retry hint like BUSY.
 */
export class NoFreeSlotError extends AdapterStoreError {
  constructor(cid: string, slots: number) {
    super(
      'NO_FREE_SLOT',
      `all ${slots - 1} adapter slots are held by running sequences; retry when one finishes or raise pool.slots`,
      { cid, slots }
    )
  }
}
