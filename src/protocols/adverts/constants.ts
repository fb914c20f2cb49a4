// Limits and timings of the capability advert protocol. Every limit bounds what a peer can make
// us decode, hold or re-broadcast.

export const ADVERTS_TOPIC = '/openlora/adverts/1'
/** Domain separation tag of the peer-key signature over an advert body. */
export const ADVERT_SIGN_DOMAIN = 'openlora/advert/1'
export const ADVERT_VERSION = 1

/**
 * Largest advert accepted on the wire. 10,000 cached adapters in one tier cost a ~12 KiB Bloom
 * filter (1% false positives) plus the listed CIDs (64 × ~62 B ≈ 4 KiB per tier), so 64 KiB
 * leaves room for three full tiers, hardware and models while keeping gossip cheap.
 */
export const MAX_ADVERT_BYTES = 64 * 1024
/** Adapters listed by CID per tier; beyond this a tier also carries a Bloom filter of all of them. */
export const DEFAULT_ADAPTER_LIST_LIMIT = 64
/** Target false-positive rate of a tier's Bloom filter. */
export const BLOOM_FALSE_POSITIVE_RATE = 0.01
/** A Bloom filter larger than this is refused (it would not fit an advert anyway). */
export const MAX_BLOOM_BYTES = 48 * 1024
export const MAX_BLOOM_HASHES = 16

export const MAX_ADDRS = 8
export const MAX_ADDR_CHARS = 256
export const MAX_MODELS = 16
export const MAX_GPUS = 16
export const MAX_STRING_CHARS = 128
export const MAX_CID_CHARS = 128
/** Cap on an advert's lifetime so a peer cannot pin a stale entry in every table. */
export const MAX_TTL_MS = 15 * 60_000
/** How far an advert's timestamp may run ahead of our clock (NTP-less hosts drift). */
export const MAX_CLOCK_SKEW_MS = 30_000

/** Defaults of the advert service; config overrides them (config/default.json, `adverts`). */
export const DEFAULT_HEARTBEAT_MS = 30_000
export const DEFAULT_TTL_MS = 120_000
/** Capability changes arrive in bursts (an adapter load moves it across tiers); coalesce them. */
export const DEFAULT_DEBOUNCE_MS = 250
/**
 * A valid peer could still flood the topic with ever-newer adverts; receivers IGNORE (so do not
 * relay) an advert signed less than this after the one they hold. Publishers space their own
 * adverts by PUBLISH_SPACING_MS (by their own clock, which also stamps `ts`), so an honest
 * publisher never trips it.
 */
export const MIN_ADVERT_INTERVAL_MS = 100
export const PUBLISH_SPACING_MS = 150
/**
 * Verified operator bindings kept so each peer's secp256k1 recovery runs once, not per advert;
 * also the number of peers' Ed25519 key objects kept for advert signatures.
 */
export const BINDING_CACHE_SIZE = 4096

/**
 * Table sync: on each new connection a node asks the peer for every advert it holds, so a node
 * that joins (or restarts) knows the network at once instead of after everyone's next heartbeat.
 */
export const ADVERTS_SYNC_PROTOCOL = '/openlora/adverts-sync/1'
/** Most adverts one sync answer may carry (and a client reads). */
export const MAX_SYNC_ADVERTS = 2_000
/** Most bytes of adverts in one sync answer: a table of typical (~1–15 KiB) adverts fits. */
export const MAX_SYNC_BYTES = 8 * 1024 * 1024
/** Concurrent sync requests a node answers: a swarm joining at once hits its first node. */
export const SYNC_MAX_INBOUND_STREAMS = 32
export const SYNC_TIMEOUT_MS = 10_000
export const SYNC_RETRY_MS = 5_000
