// /openlora/adapter/1.0.0: fetch a PEFT adapter's two files by the CID of their manifest.
export const ADAPTER_PROTOCOL = '/openlora/adapter/1.0.0'
/** The request is one CID; 512 bytes is several times the longest CID string. */
export const MAX_ADAPTER_REQUEST_BYTES = 512
/** The manifest frame lists two files (name, size, 32-byte hash each). */
export const MAX_MANIFEST_FRAME_BYTES = 4096
/** Data frames; 64 KiB keeps per-frame memory small and lets yamux interleave other streams. */
export const CHUNK_BYTES = 64 * 1024
/**
 * Largest adapter this node fetches: a rank-64 adapter on all seven projections of a 7B model
 * is ~320 MiB in fp16; 1 GiB leaves room while stopping a peer from streaming without end.
 */
export const DEFAULT_MAX_ADAPTER_BYTES = 1024 * 1024 * 1024
/** The files an adapter CID covers (INTERFACES.md), in manifest (name) order. */
export const ADAPTER_FILE_NAMES = ['adapter_config.json', 'adapter_model.safetensors'] as const
export const FETCH_TIMEOUT_MS = 120_000
/** Bytes a fetch buffers ahead of the reader (yamux's window is 256 KiB; 4 MiB is libp2p's default). */
export const FETCH_BUFFER_BYTES = 4 * 1024 * 1024
/**
 * Per-peer and node-wide limits on serving adapters. A fetch is one request per adapter and a
 * node fetches an adapter once, so 2 at a time and 2/s (burst 8) per peer cover an honest node
 * filling its store; each transfer holds the adapter's bytes in memory while it is written, so the
 * node serves at most 8 at once.
 */
export const ADAPTER_SERVE_LIMITS = {
  requestsPerSecondPerPeer: 2,
  requestBurstPerPeer: 8,
  maxConcurrentPerPeer: 2,
  maxConcurrent: 8
}
