import { OpenLoraError } from '../common/errors.ts'

export type DatanetErrorCode =
  | 'DATANET_NOT_FOUND'
  | 'DATANET_INVALID'
  | 'CONTRIBUTION_INVALID'
  | 'CONTRIBUTION_DUPLICATE'
  | 'VERSION_NOT_FOUND'
  | 'NOTHING_TO_PUBLISH'
  | 'CHUNK_NOT_FOUND'
  | 'CHUNK_MISMATCH'
  | 'INDEX_INVALID'
  | 'DATANET_FORK'

export class DatanetError extends OpenLoraError<DatanetErrorCode> {}

/** A replicated bundle is consistent, but this node holds another history of the datanet. */
export const forkError = (why: string) =>
  new DatanetError('DATANET_FORK', `datanet bundle not applied: ${why}; versions would fork`)

export type ProvenanceErrorCode = 'PROVENANCE_INVALID'
export class ProvenanceError extends OpenLoraError<ProvenanceErrorCode> {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('PROVENANCE_INVALID', message, data)
  }
}

export type AttributionErrorCode = 'ATTRIBUTION_INPUT_INVALID' | 'PROOF_MALFORMED'
export class AttributionError extends OpenLoraError<AttributionErrorCode> {}
