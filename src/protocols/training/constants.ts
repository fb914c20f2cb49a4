// /openlora/train/1.0.0: a peer asks a node to train a LoRA adapter on a datanet the node holds.
export const TRAIN_PROTOCOL = '/openlora/train/1.0.0'
/** The request is a few hyperparameters and ids; 16 KiB is far above any valid one. */
export const MAX_TRAIN_REQUEST_BYTES = 16 * 1024
/** A result frame carries the signed record with one loss per step (≤ MAX_REMOTE_STEPS). */
export const MAX_TRAIN_FRAME_BYTES = 1024 * 1024
/** Steps a remote job may ask for: bounds the node's work and the record's size. */
export const MAX_REMOTE_STEPS = 2000
/** A remote job runs at most this long before the node gives up on it. */
export const TRAIN_TIMEOUT_MS = 30 * 60_000
