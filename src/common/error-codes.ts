// The one registry of error codes. Every error that crosses a layer, a process or the wire
// carries one of these (OpenLoraError only takes a registered code), and callers tell errors
// apart by code, never by message text. `wire` is the class a client of the infer protocol sees
// when a lower layer's error ends a job (the infer `error` frame carries only wire classes; the
// precise code rides in its message as `CODE: …` for payment refusals and PEER_UNREACHABLE, so a
// client that predates a code still decodes the frame and sees its class and message).
//
// Adding a code: one line here, with what it means and its wire class.

export const INFER_WIRE_CODES = [
  'BAD_REQUEST',
  'ADAPTER_NOT_FOUND',
  'MODEL_NOT_FOUND',
  'BUSY',
  'RATE_LIMITED',
  'DEADLINE_EXCEEDED',
  'INTERNAL',
  'PAYMENT_REQUIRED'
] as const
export type InferWireCode = (typeof INFER_WIRE_CODES)[number]

interface CodeInfo {
  /** what went wrong, for docs and `openlora` users */
  meaning: string
  /** what an infer client sees when this error ends a job */
  wire: InferWireCode
}

const code = (wire: InferWireCode, meaning: string): CodeInfo => ({ wire, meaning })

export const ERROR_CODES = {
  // the infer wire's own classes
  BAD_REQUEST: code('BAD_REQUEST', 'the request is malformed or asks for something out of range'),
  ADAPTER_NOT_FOUND: code(
    'ADAPTER_NOT_FOUND',
    'no reachable peer holds the adapter, or it failed its checks'
  ),
  MODEL_NOT_FOUND: code('MODEL_NOT_FOUND', 'no reachable peer serves the base model'),
  BUSY: code('BUSY', 'the node is at capacity; retry after retryAfterMs'),
  RATE_LIMITED: code('RATE_LIMITED', 'too many requests from this peer or key; retry after retryAfterMs'),
  DEADLINE_EXCEEDED: code('DEADLINE_EXCEEDED', 'the job was cancelled or ran past its deadline'),
  INTERNAL: code('INTERNAL', 'an unexpected failure on the serving node'),
  PAYMENT_REQUIRED: code('PAYMENT_REQUIRED', 'the job needs a voucher that covers it'),
  PROTOCOL_ERROR: code(
    'INTERNAL',
    'the remote peer broke the protocol (malformed, oversized, truncated frame)'
  ),
  PAYMENT_REFUSED: code('PAYMENT_REQUIRED', 'the client refused the terms or the receipt the node offered'),
  PEER_UNREACHABLE: code(
    'INTERNAL',
    'the entry could dial no serving peer, or the client its entry (killed, partitioned, relay gone): the job reached no node, so none charged it; a retry may pick another peer'
  ),

  // generic
  INVALID_PARAMETERS: code('BAD_REQUEST', 'a parameter is missing, malformed or out of range'),
  INVALID_REQUEST: code('BAD_REQUEST', 'a request failed its schema'),
  INVALID_INPUT: code('BAD_REQUEST', 'an input file or value failed its schema'),
  INVALID_CONFIG: code('BAD_REQUEST', 'a config key has a value that is not allowed'),
  LIMIT_EXCEEDED: code('BAD_REQUEST', 'a size or count limit was exceeded'),
  NOT_SUPPORTED: code('BAD_REQUEST', 'the feature is named but not built'),
  UNKNOWN_ERROR: code('INTERNAL', 'an error without a code, wrapped'),

  // node
  KEYSTORE: code('INTERNAL', 'a keystore file is malformed, or its password is wrong'),
  DATA_DIR_LOCKED: code('INTERNAL', 'another node holds the data directory'),
  KEY_FILE: code('INTERNAL', 'a key file is unreadable, malformed or has loose permissions'),
  DATABASE_CORRUPT: code('INTERNAL', 'the node database is corrupt; `openlora db repair` after a backup'),
  DATABASE_LOCKED: code('INTERNAL', 'another process holds the node database'),
  DATABASE_OPEN: code('INTERNAL', 'the node database failed to open for another reason'),
  LEVEL_LOCKED: code('INTERNAL', 'the LevelDB is held by another process'),
  STORE_LOCKED: code('INTERNAL', 'a store is held by a running node'),
  STORE_CLOSED: code('BUSY', 'the store was closed (the node is stopping)'),
  ADMIN_UNAVAILABLE: code('INTERNAL', 'no running node answers on the admin endpoint'),
  ADMIN_REFUSED: code('INTERNAL', 'the admin endpoint refused the request'),
  BAD_ADMIN_REQUEST: code('BAD_REQUEST', 'an admin request failed its checks'),
  NO_NODE_UP: code('INTERNAL', 'a swarm has no node running'),
  PEER_NOT_FOUND: code('ADAPTER_NOT_FOUND', 'no address is known for the peer'),
  INVALID_ADVERT: code('BAD_REQUEST', 'an advert failed its checks'),

  // gateway (HTTP)
  GATEWAY_ERROR: code(
    'BAD_REQUEST',
    'an HTTP request the gateway answers with its own status and OpenAI error'
  ),
  BUDGET_EXHAUSTED: code('PAYMENT_REQUIRED', "the gateway's spend budget (global or per key) is used up"),

  // runtime
  MODEL_CONFIG_INVALID: code(
    'BAD_REQUEST',
    'config.json names a family or feature the runtime does not compute'
  ),
  MODEL_WEIGHTS_INVALID: code('INTERNAL', 'a checkpoint tensor is missing or has the wrong shape'),
  SAFETENSORS_INVALID: code('BAD_REQUEST', 'a safetensors file is malformed'),
  GGUF_INVALID: code('BAD_REQUEST', 'a GGUF file is malformed'),
  TOKENIZER_INVALID: code('BAD_REQUEST', 'tokenizer.json or its chat template is malformed'),
  TRAINING_INPUT_INVALID: code('BAD_REQUEST', 'training data or options are malformed (token ids, lengths)'),
  TRAINING_UNSUPPORTED: code(
    'BAD_REQUEST',
    'the model uses an architecture feature the training graph does not differentiate yet'
  ),
  TRAINING_NOT_OFFERED: code('BAD_REQUEST', 'the peer does not offer training jobs (/openlora/train/1.0.0)'),
  TRAINING_FAILED: code('INTERNAL', 'a remote training job failed or its result did not verify'),
  ADAPTER_REGISTRATION_REFUSED: code(
    'BAD_REQUEST',
    'a trained adapter cannot be registered: its record fails, or a datanet it names is not on-chain'
  ),
  ADAPTER_INVALID: code('ADAPTER_NOT_FOUND', 'a PEFT adapter is malformed or uses an unsupported feature'),
  ADAPTER_BASE_MISMATCH: code('ADAPTER_NOT_FOUND', "the adapter's shapes do not fit the base model"),
  ADAPTER_RANK_TOO_LARGE: code('ADAPTER_NOT_FOUND', "the adapter's rank exceeds the slot pool's"),
  ADAPTER_TARGET_UNSUPPORTED: code(
    'ADAPTER_NOT_FOUND',
    'the adapter targets a module the runtime cannot adapt'
  ),
  ADAPTER_TOO_LARGE: code('ADAPTER_NOT_FOUND', 'the adapter exceeds the size limit'),
  ADAPTER_CID_MISMATCH: code('ADAPTER_NOT_FOUND', "the adapter's bytes do not hash to the CID asked for"),
  ADAPTER_VERIFY_FAILED: code('ADAPTER_NOT_FOUND', "a peer sent adapter bytes that fail the CID's checks"),
  SLOT_POOL_INVALID: code('INTERNAL', 'a slot pool was configured with impossible sizes'),
  NO_FREE_SLOT: code('BUSY', 'every adapter slot is in use'),
  NO_FREE_SEQUENCE: code('BUSY', 'every sequence of the batch is in use'),
  SEQUENCE_INVALID: code('BAD_REQUEST', 'a sequence is empty, too long or has out-of-vocabulary ids'),
  ENGINE_STOPPED: code('BUSY', 'the engine is stopping'),
  STEP_FAILED: code('INTERNAL', 'an ONNX Runtime step failed'),
  SESSION_WORKER_FAILED: code('INTERNAL', "the ONNX Runtime session's worker thread failed"),
  NATIVE_UNAVAILABLE: code(
    'INTERNAL',
    'the native decode kernels cannot run here: no C++ compiler, the build failed, or the model uses a feature they lack'
  ),

  // attribution
  DATANET_NOT_FOUND: code('BAD_REQUEST', 'no such datanet or datanet version'),
  VERSION_NOT_FOUND: code('BAD_REQUEST', 'no such datanet version'),
  DATANET_INVALID: code('BAD_REQUEST', 'a datanet or its bundle fails its checks'),
  DATANET_VERIFY_FAILED: code('BAD_REQUEST', 'a peer sent datanet bytes that fail the trusted roots'),
  DATANET_UNTRUSTED: code('BAD_REQUEST', 'no trusted root is known for the datanet version'),
  DATANET_FORK: code('BAD_REQUEST', "the local datanet history differs from the peer's"),
  DATANET_BUSY: code('BUSY', 'too many datanet exports at once'),
  CHUNK_NOT_FOUND: code('BAD_REQUEST', 'a datanet chunk is missing'),
  CHUNK_MISMATCH: code('BAD_REQUEST', 'a datanet chunk does not hash to its leaf'),
  CONTRIBUTION_INVALID: code('BAD_REQUEST', 'a contribution fails its checks'),
  CONTRIBUTION_DUPLICATE: code('BAD_REQUEST', 'the contribution is already in the datanet'),
  NOTHING_TO_PUBLISH: code('BAD_REQUEST', 'no new contributions since the last version'),
  INDEX_INVALID: code('INTERNAL', 'a span index file is malformed'),
  PROVENANCE_INVALID: code('BAD_REQUEST', "an adapter's provenance record fails its checks"),
  ATTRIBUTION_INPUT_INVALID: code('BAD_REQUEST', 'attribution was asked about malformed tokens'),
  PROOF_MALFORMED: code('BAD_REQUEST', 'an attribution proof fails its schema'),

  // chain and payments
  CHAIN_CONFIG: code('INTERNAL', 'the chain config is malformed'),
  CHAIN_CALL: code('INTERNAL', 'a chain call failed or reverted'),
  LOCAL_CHAIN: code('INTERNAL', 'the local anvil chain failed to start'),
  COMPILE_FAILED: code('INTERNAL', 'the Solidity sources failed to compile'),
  MALFORMED_VOUCHER: code('PAYMENT_REQUIRED', 'a voucher fails its schema'),
  BAD_SIGNATURE: code('PAYMENT_REQUIRED', 'a voucher signature is not the payer’s canonical low-s signature'),
  WRONG_CHANNEL: code('PAYMENT_REQUIRED', 'a voucher names another node, chain or contract'),
  NOT_INCREASING: code('PAYMENT_REQUIRED', "a voucher does not raise the channel's cumulative amount"),
  UNDERPAID: code('PAYMENT_REQUIRED', "a voucher does not cover the job's worst case"),
  INSUFFICIENT_ESCROW: code(
    'PAYMENT_REQUIRED',
    "the client's escrow for this node does not cover the voucher"
  ),
  WITHDRAWAL_PENDING: code('PAYMENT_REQUIRED', 'the client has a withdrawal pending'),
  JOB_REPLAYED: code('PAYMENT_REQUIRED', 'the job id was used before'),
  UNKNOWN_ADAPTER: code('PAYMENT_REQUIRED', 'a priced job names an adapter not registered on-chain'),
  VOUCHER_MISSING: code('PAYMENT_REQUIRED', 'a priced job came without a voucher')
} as const satisfies Record<string, CodeInfo>

export type ErrorCode = keyof typeof ERROR_CODES

export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === 'string' && Object.hasOwn(ERROR_CODES, v)
}

/** The infer wire class of a registered code. */
export function wireCodeOf(c: ErrorCode): InferWireCode {
  return ERROR_CODES[c].wire
}
