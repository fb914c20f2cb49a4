// Runs one forward pass of the decoder graph over a contiguous range of KV-cache rows. Shared by
// the in-process path and the worker thread (session-worker.ts): onnxruntime-node's run() is
// synchronous on the calling thread, so the node runs the session in a worker to keep its event
// loop (libp2p, RPC) free during a step. KV caches, per-row LoRA buffers and RoPE tables live in
// SharedArrayBuffers that both threads see; ORT reads them in place (inputs are zero-copy) and the
// runner writes each pass's new keys/values into the cache rows.
import * as ort from 'onnxruntime-node'
import {
  INPUT_IDS,
  LAST_INDEX,
  LOGITS,
  NEW_POS,
  newKey,
  newValue,
  pastKey,
  pastValue,
  SEQLENS_K,
  TOTAL_SEQ_LEN
} from '../graph/decoder.ts'
import { NativeDecoder, type NativeSetup } from '../native/decoder.ts'
import { relayoutKv } from './kv-layout.ts'
import type { Pass } from './step-plan.ts'

/**
 * One run: a planned pass (step-plan.ts: rows [lo, lo + n) of the KV cache, S new tokens each)
 * plus `capacity`, the positions per row the cache buffers are laid out with now
 * ([maxBatch, kvHeads, capacity, Dp] in their first floats; ≤ RunnerSetup.capacity). See KvLayout
 * in loaded-model.ts for why.
 */
export type RunRequest = Omit<Pass, 'outputs'> & {
  capacity: number
  /** the layout the buffers hold now, when it is not `capacity`: the runner moves them first */
  relayoutFrom?: number
}

/** A float buffer that a graph input reads, by name and shape (e.g. one LoRA pool). */
export interface SharedInput {
  name: string
  data: Float32Array
  dims: number[]
}

/** A float buffer holding one slice per KV-cache row (e.g. a row's LoRA A); runs take rows [lo, lo + n). */
export interface RowInput {
  name: string
  data: Float32Array
  /** dims of one row's slice */
  rowDims: number[]
}

/** Everything a runner needs; all arrays are SharedArrayBuffer-backed so a worker can take them. */
export interface RunnerSetup {
  modelPath: string
  /**
   * the prompt-pass graph of an int8/int4 model (graph/linear.ts prefillLinear): passes with more
   * than one new token per row run it, decode passes (one token a row) the main graph. Same
   * inputs and outputs; its own session (and weights in memory).
   */
  prefillModelPath?: string
  sessionOptions: ort.InferenceSession.SessionOptions
  numLayers: number
  kvHeads: number
  /** the most positions a row can hold (maxSeqLen); buffers are sized for it */
  capacity: number
  headDim: number
  keys: Float32Array[]
  values: Float32Array[]
  /** RoPE tables: fixed graph inputs fed on every run */
  inputs: SharedInput[]
  /** per-row LoRA buffers */
  rowInputs: RowInput[]
  /**
   * the native decode engine (runtime/native/decoder.ts, issue 17): when set, decode passes (one
   * new token a row) run on it over these same buffers, every other pass on ORT
   */
  native?: NativeSetup
}

export interface Runner {
  run(req: RunRequest): Promise<Float32Array>
  release(): Promise<void>
}

export function sharedFloats(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(n * 4))
}

/** The run logic itself, over an open session. */
export class SessionRunner implements Runner {
  private readonly session: ort.InferenceSession
  private readonly prefill: ort.InferenceSession | undefined
  private readonly s: RunnerSetup
  private readonly fixed: Record<string, ort.Tensor> = {}
  private readonly native: NativeDecoder | undefined

  constructor(
    session: ort.InferenceSession,
    setup: RunnerSetup,
    prefill?: ort.InferenceSession,
    native?: NativeDecoder
  ) {
    this.session = session
    this.prefill = prefill
    this.native = native
    this.s = setup
    for (const i of setup.inputs) this.fixed[i.name] = new ort.Tensor('float32', i.data, i.dims)
  }

  static async open(setup: RunnerSetup): Promise<SessionRunner> {
    const session = await ort.InferenceSession.create(setup.modelPath, setup.sessionOptions)
    const o = setup.sessionOptions
    const prefill = setup.prefillModelPath
      ? await ort.InferenceSession.create(setup.prefillModelPath, {
          ...o,
          ...(o.profileFilePrefix ? { profileFilePrefix: `${o.profileFilePrefix}-prefill` } : {})
        })
      : undefined
    const native = setup.native ? NativeDecoder.open(setup.native, setup) : undefined
    return new SessionRunner(session, setup, prefill, native)
  }

  async run(req: RunRequest): Promise<Float32Array> {
    const { lo, n, S } = req
    const s = this.s
    const cap = req.capacity
    if (req.relayoutFrom !== undefined) {
      // every row's every head is one block of the buffers (sized for the largest capacity)
      const blocks = s.keys[0]!.length / (s.capacity * s.headDim)
      relayoutKv([...s.keys, ...s.values], blocks, req.relayoutFrom, cap, s.headDim)
    }
    // the engine writes each row's new key/value into the buffers itself
    if (this.native && (S === 1 || this.native.prompts)) return this.native.run({ ...req, capacity: cap })
    const kvDims = [n, s.kvHeads, cap, s.headDim]
    let total = 0
    for (const v of req.seqlens) total = Math.max(total, v + 1)
    const feeds: Record<string, ort.Tensor> = {
      ...this.fixed,
      [INPUT_IDS]: new ort.Tensor('int64', req.ids, [n, S]),
      [SEQLENS_K]: new ort.Tensor('int32', req.seqlens, [n]),
      [TOTAL_SEQ_LEN]: new ort.Tensor('int32', Int32Array.of(total), []),
      [LAST_INDEX]: new ort.Tensor('int64', req.lastIndex, [n]),
      [NEW_POS]: new ort.Tensor('int64', req.newPos, [n, 1, S, 1])
    }
    for (const r of s.rowInputs) {
      const size = r.rowDims.reduce((x, y) => x * y, 1)
      feeds[r.name] = new ort.Tensor('float32', r.data.subarray(lo * size, (lo + n) * size), [
        n,
        ...r.rowDims
      ])
    }
    const rowFloats = s.kvHeads * cap * s.headDim
    const a = lo * rowFloats
    const b = (lo + n) * rowFloats
    for (let l = 0; l < s.numLayers; l++) {
      feeds[pastKey(l)] = new ort.Tensor('float32', s.keys[l]!.subarray(a, b), kvDims)
      feeds[pastValue(l)] = new ort.Tensor('float32', s.values[l]!.subarray(a, b), kvDims)
    }
    const res = await (S > 1 && this.prefill ? this.prefill : this.session).run(feeds)
    // write the new positions into the cache: per row and head, one contiguous run of positions
    const D = s.headDim
    for (let l = 0; l < s.numLayers; l++) {
      for (const [cache, out] of [
        [s.keys[l]!, res[newKey(l)]!.data as Float32Array],
        [s.values[l]!, res[newValue(l)]!.data as Float32Array]
      ] as const) {
        for (let row = 0; row < n; row++) {
          const count = req.newCount[row]!
          if (count === 0) continue
          const pos = Number(req.newPos[row * S]!)
          for (let h = 0; h < s.kvHeads; h++) {
            const from = (row * s.kvHeads + h) * S * D
            const to = (((lo + row) * s.kvHeads + h) * cap + pos) * D
            cache.set(out.subarray(from, from + count * D), to)
          }
        }
      }
    }
    return res[LOGITS]!.data as Float32Array
  }

  async release(): Promise<void> {
    this.native?.close()
    // the profile is written when profiling ends, not step by step
    for (const session of this.prefill ? [this.session, this.prefill] : [this.session]) {
      if (this.s.sessionOptions.enableProfiling) session.endProfiling()
      await session.release()
    }
  }
}
