// Protocol id, frame limits and per-peer limits of /openlora/infer/1.0.0. Each value that is not
// obvious says why it has the size it has; docs/PROTOCOL.md lists them all for implementers.

export const INFER_PROTOCOL = '/openlora/infer/1.0.0'

/** Signature domains: a signature made for one purpose can never be replayed as another. */
export const REQUEST_SIGNATURE_DOMAIN = 'openlora/infer-request/1'
export const RECEIPT_SIGNATURE_DOMAIN = 'openlora/receipt/1'

/**
 * The request is the only frame a client sends. 256 KiB holds a prompt of ~200k characters or
 * 32k token ids with room to spare, far above any context the served models take.
 */
export const MAX_REQUEST_FRAME_BYTES = 256 * 1024
/**
 * Response frames: a token frame is ~40 bytes, the result frame carries the full text, the
 * prompt token ids and the receipt; 1 MiB holds 4,096 output tokens of any text plus a 32k-token
 * prompt's ids.
 */
export const MAX_RESPONSE_FRAME_BYTES = 1024 * 1024

export const MAX_MODEL_ID_CHARS = 128
export const MAX_CID_CHARS = 128
export const MAX_PEER_ID_CHARS = 128
export const MAX_PROMPT_CHARS = 200_000
export const MAX_PROMPT_IDS = 32_768
export const MAX_MESSAGES = 256
/** The wire limit; the engine's own (config) limit on new tokens may be lower and is checked there. */
export const MAX_NEW_TOKENS = 4096
/** Stop ids and strings: the runtime's limits (runtime/generate.ts), the same on the wire. */
export { MAX_STOP_STRING_CHARS, MAX_STOP_STRINGS, MAX_STOP_TOKEN_IDS } from '../../runtime/generate.ts'
export const MAX_TOKEN_TEXT_CHARS = 256
export const MAX_ERROR_MESSAGE_CHARS = 1024
/** A voucher is an EIP-712 message plus a 65-byte signature; 4 KiB is several times that. */
export const MAX_VOUCHER_BYTES = 4096
/** Deadlines further out than this are refused: a job that long would hold a batch row forever. */
export const MAX_DEADLINE_AHEAD_MS = 30 * 60_000

/**
 * At most two forwards (client → entry → relay → server): enough to reach any peer of a
 * well-meshed PeerTable from any entry, and bounds the work one request can cause.
 */
export const MAX_HOPS = 2

/** A client has this long to send its request after opening the stream. */
export const REQUEST_READ_TIMEOUT_MS = 10_000
/**
 * A progress frame goes out when no other frame went out for this long; libp2p closes a stream
 * idle for 120 s, so 10 s keeps queued or slow jobs alive with a wide margin.
 */
export const PROGRESS_INTERVAL_MS = 10_000

/** Default limits per remote peer; a client beyond them gets RATE_LIMITED with a retry hint. */
export const DEFAULT_MAX_CONCURRENT_JOBS_PER_PEER = 8
export const DEFAULT_REQUESTS_PER_SECOND_PER_PEER = 20
export const DEFAULT_REQUEST_BURST_PER_PEER = 40
/** The engine's default sequence length (runtime/engine/config.ts): a longer prompt can never run,
 * and refusing it here costs the client one round trip instead of a queued job. */
export const DEFAULT_MAX_PROMPT_TOKENS = 2048
/** All jobs this node runs or relays at once; beyond it BUSY. */
export const DEFAULT_MAX_CONCURRENT_JOBS = 128
/** Inbound streams libp2p lets one connection open for this protocol (> per-peer job limit so extra ones get a typed error instead of a reset). */
export const MAX_INBOUND_STREAMS = 64
export const MAX_OUTBOUND_STREAMS = 256
/**
 * How long a relay waits for the dial and then for the first frame of a forwarded peer before
 * trying the next one: twice the progress interval, since a peer fetching an adapter first
 * sends only progress frames.
 */
export const FORWARD_FIRST_FRAME_TIMEOUT_MS = 2 * PROGRESS_INTERVAL_MS

/** How long a job waits for the DHT to name an adapter's holders when no advert does. */
export const PROVIDER_LOOKUP_TIMEOUT_MS = 5_000

/**
 * The retry hint of PEER_UNREACHABLE (no serving peer could be dialled): by then the entry has
 * planned the dead peer last and adverts have had a heartbeat to move on.
 */
export const UNREACHABLE_RETRY_MS = 1_000
/** How long a peer a forward failed to dial is planned behind every other candidate. */
export const UNREACHABLE_FOR_MS = 10_000
