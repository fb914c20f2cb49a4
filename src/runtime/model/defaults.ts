// What loadModel uses when a caller leaves a size out. A module of its own so that config
// schemas (the node's `infer` section) can state the same defaults without loading ONNX Runtime.
import { DEFAULT_LIMITS } from '../engine/config.ts'
import { PROJECTIONS } from './config.ts'

export const MODEL_DEFAULTS = {
  // KV rows and sequence length are the engine's limits (runtime/engine/config.ts says why)
  maxBatch: DEFAULT_LIMITS.maxBatch,
  maxSeqLen: DEFAULT_LIMITS.maxSeqLen,
  // a slot of rank 16 on all seven projections costs ~19.5 MB for a 135M model and ~168 MB for an
  // 8B one; 16 slots (+ one buffer per KV row) keep the default safe for both; the engine sizes it
  pool: { slots: 16, maxRank: 16, targets: PROJECTIONS as readonly string[] }
}
