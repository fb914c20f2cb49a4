// Limits and defaults of datanets and attribution. Each limit bounds what a peer or a file can
// make this node hold or hash.

/** Shortest output span (tokens) that counts as drawing on a datanet; shorter runs are common phrases. */
export const DEFAULT_MIN_SPAN_TOKENS = 8
/** Target size of a contribution chunk. 4 KiB keeps a span's proof to one or two chunks of text. */
export const CHUNK_BYTES = 4096
/** A chunk may run past the target this far to end on whitespace instead of mid-word. */
export const CHUNK_SLACK_BYTES = 512
/** Largest document accepted as one contribution file (a .jsonl file may be larger; each row counts). */
export const MAX_CONTRIBUTION_BYTES = 16 * 1024 * 1024
export const MAX_CONTRIBUTION_FILE_BYTES = 256 * 1024 * 1024
export const MAX_NAME_CHARS = 128
export const MAX_DESCRIPTION_CHARS = 4096
export const MAX_TAGS = 32
export const MAX_TAG_CHARS = 64
/** Basis points of a whole: every weight list sums to exactly this. */
export const TOTAL_BP = 10_000
/** An adapter names at most this many datanets in its provenance (adverts carry it). */
export const MAX_PROVENANCE_DATANETS = 64
/** A span found in more places than this is credited by its first occurrences in suffix order only. */
export const MAX_OCCURRENCES_SCANNED = 4096
/** A span credits at most this many contributors (lowest addresses first), bounding proof size. */
export const MAX_CONTRIBUTORS_PER_SPAN = 16
/** Receipts list at most this many contributors (highest weights first) for provenance attribution. */
export const MAX_RECEIPT_CONTRIBUTORS = 256
/** Output length that attribution accepts (tokens). */
export const MAX_OUTPUT_TOKENS = 65_536
/** A proof file or message larger than this is rejected before parsing. */
export const MAX_PROOF_BYTES = 16 * 1024 * 1024
/** Most spans one proof may carry. */
export const MAX_PROOF_SPANS = 4096
/** A Merkle path longer than this cannot come from a version of at most 2^40 contributions. */
export const MAX_MERKLE_DEPTH = 40
/**
 * Credits are integers: each span gives SPAN_CREDIT_SCALE × length units, split evenly among the
 * contributors it credits, so weights are exact and the same on every platform.
 */
export const SPAN_CREDIT_SCALE = 720_720
