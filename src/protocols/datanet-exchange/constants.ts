// /openlora/datanet/1.0.0: copy a published datanet version (its bundle, then its chunks) from a peer.
export const DATANET_PROTOCOL = '/openlora/datanet/1.0.0'
/** A request names a datanet and version, or up to MAX_CHUNKS_PER_REQUEST chunk refs (~90 B each). */
export const MAX_DATANET_REQUEST_BYTES = 64 * 1024
export const MAX_CHUNKS_PER_REQUEST = 256
/**
 * A version bundle lists every contribution with its chunk manifest (~150 B per 4 KiB chunk):
 * 64 MiB covers ~1.7 GB of text, far past the benchmarked 10 M-token datanets.
 */
export const MAX_BUNDLE_FRAME_BYTES = 64 * 1024 * 1024
/** One chunk frame: a chunk (≤ CHUNK_BYTES + slack in attribution/constants.ts) in CBOR. */
export const MAX_CHUNK_FRAME_BYTES = 16 * 1024
export const DATANET_FETCH_TIMEOUT_MS = 300_000
