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
/**
 * Per-peer and node-wide limits on serving datanets. A copy asks for one bundle, then chunks in
 * back-to-back requests of up to 256: 50/s (burst 100) per peer lets one copy move ~50 MiB/s of
 * 4 KiB chunks, and 4 requests at once per peer (16 node-wide) bound the chunk bytes a node holds
 * for writing (16 × 256 × 4 KiB = 16 MiB). Bundle exports have their own cap of 2 node-wide.
 */
export const DATANET_SERVE_LIMITS = {
  requestsPerSecondPerPeer: 50,
  requestBurstPerPeer: 100,
  maxConcurrentPerPeer: 4,
  maxConcurrent: 16
}
/** Bundle exports at once: each holds its whole bundle frame in memory until it is written. */
export const MAX_CONCURRENT_EXPORTS = 2
/** A copy waits out a RATE_LIMITED / BUSY answer (its retry hint, at most this long) this many times per peer. */
export const MAX_BUSY_RETRIES = 5
export const MAX_BUSY_WAIT_MS = 5_000
