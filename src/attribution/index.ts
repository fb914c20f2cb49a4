// Public interface of the attribution layer: datanets, span indexes, attribution and its proofs.
// Other layers import from here only.
export {
  type AttributionResult,
  Attributor,
  type AttributorComponents,
  type AttributorInit,
  attributionHash,
  proofHash,
  summarise
} from './attribute.ts'
export { CONTRIBUTION_KIND, chunkDocument, contributionCid, documentsFromFile } from './chunking.ts'
export * from './constants.ts'
export { weightsFromSpans } from './credit.ts'
export {
  type AnyLevel,
  type ContributionRecord,
  type CreateDatanetInput,
  type DatanetRecord,
  DatanetStore,
  type DatanetStoreComponents,
  datanetIdOf,
  type VersionRecord
} from './datanet-store.ts'
export { AttributionError, DatanetError, ProvenanceError } from './errors.ts'
export { buildSpanIndex, loadSpanIndex, SpanIndexCache, writeSpanIndex } from './index-file.ts'
export { buildMerkleTree, contributionLeaf, hashPair, processMerkleProof } from './merkle.ts'
export { modelTextEncoder } from './model-tokenizer.ts'
export { checkProofSchema } from './proof-schema.ts'
export { isDatanetId, validateProvenance } from './provenance.ts'
export {
  AttributionProofStore,
  type JobOutput,
  type SpanAttributionComponents,
  spanAttributionProvider
} from './provider.ts'
export { exportVersion, importVersion, type VersionBundle } from './replicate.ts'
export { type FoundSpan, SpanIndex } from './span-index.ts'
export type * from './types.ts'
export {
  type VerifyCheck,
  type VerifyFailure,
  type VerifyOptions,
  type VerifyResult,
  verifyAttribution
} from './verify.ts'
export { toBasisPoints } from './weights.ts'
