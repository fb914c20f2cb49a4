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

/** Proof that the output tokens [outputOffset, outputOffset + tokens.length) occur in a contribution. */
export interface SpanProof {
  datanet: Hex
  version: number
  /** position of the span in the output token ids */
  outputOffset: number
  tokens: number[]
  contribution: {
    cid: string
    contributor: Hex
    /** every chunk's size and sha256, in order: enough to recompute the contribution CID */
    chunks: ChunkRef[]
  }
  /** index of the first chunk carried in `text` */
  chunkIndex: number
  /** the carried chunks' text, consecutive from chunkIndex */
  text: string[]
  /** token offset of the span within the concatenated tokens of the carried chunks */
  offset: number
  /** sibling hashes from the contribution's leaf to the version root */
  merkle: Hex[]
}

export interface AttributionProof {
  v: 1
  method: 'provenance' | 'spans'
  outputHash: Hex
  outputTokens: number
  minSpanTokens: number
  /** datanet versions consulted, with the roots the proof is against, and their weights */
  datanets: { id: Hex; version: number; root: Hex; bp: number }[]
  contributors: { address: Hex; bp: number }[]
  spans: SpanProof[]
}

export interface VersionRoot {
  datanetId: Hex
  version: number
  root: Hex
}
