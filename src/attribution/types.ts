// Shapes shared by the datanet store, the attributor, the verifier and the layers that carry
// them (receipts, adverts, the CLI). Everything that is hashed is plain data: strings, integers,
// arrays and objects, no undefined, so canonical CBOR of it is well defined.
import type { Hex } from '../crypto/hash.ts'

/** The narrow tokenizer attribution needs. `encode` must not add special tokens (BOS/EOS). */
export interface TextEncoder {
  encode(text: string): number[]
}

/** The datanets an adapter was trained on and how much each counts (bp sum to 10,000). */
export interface AdapterProvenance {
  datanets: { id: Hex; version: number; bp: number }[]
}

/** What a receipt carries (docs/INTERFACES.md). */
export interface AttributionSummary {
  method: 'provenance' | 'spans'
  datanets: { id: Hex; bp: number }[]
  contributors: { address: Hex; bp: number }[]
  proofHash: Hex
}

/** Entry of a contribution manifest: one chunk of the contribution's UTF-8 text. */
export interface ChunkRef {
  size: number
  sha256: Hex
}

// Proofs are checked by a schema (proof-schema.ts); their types are derived from it.
export type { AttributionProof, SpanProof } from './proof-schema.ts'

export interface VersionRoot {
  datanetId: Hex
  version: number
  root: Hex
}
