// The native decode engine (decoder.cc, compiled by compile.ts) behind a typed wrapper. Why it
// exists (issue 17): a batch-1 decode step on ONNX Runtime is ~580 kernel launches with a fixed
// cost each, more than the step's weight reads on small models, so ORT cannot reach llama.cpp's
// speed there. The engine runs one whole decode step (S = 1 token a row) in one call, reading the
// same weights.bin as the graph and the runner's own shared KV, RoPE and LoRA buffers in place, so
// decode passes can go to it while prompt passes stay on ORT with nothing to keep in sync.
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { loraA, loraB, ROPE_COS, ROPE_SIN } from '../graph/names.ts'
import { type ModelConfig, PROJECTIONS } from '../model/config.ts'
import type { WeightFormat } from '../weight-format.ts'
import { type CompileOptions, compileNative, NativeUnavailableError } from './compile.ts'
import { type NativePlan, nativePlan } from './spec.ts'

export { DECODE_KERNELS, type DecodeKernels } from '../decode-kernels.ts'
export { NativeUnavailableError } from './compile.ts'
export {
  type NativeLayer,
  type NativeLinear,
  type NativePlan,
  nativeDecodeSupport,
  type TensorRef
} from './spec.ts'

export interface NativeLora {
  layer: number
  /** index in PROJECTIONS: 0 q, 1 k, 2 v, 3 o, 4 gate, 5 up, 6 down */
  target: number
  /** [maxRows, in, rank], the runner's per-row buffer (shared) */
  a: Float32Array
  /** [maxRows, rank, out] */
  b: Float32Array
  rank: number
  in: number
  out: number
}

/** What decoder.cc's create() takes. */
export interface NativeSpec extends NativePlan {
  maxRows: number
  /** positions a row holds at most (the buffers are sized for it) */
  capacity: number
  /** [positions, headDim / 2] */
  ropeCos: Float32Array
  ropeSin: Float32Array
  keys: Float32Array[]
  values: Float32Array[]
  lora: NativeLora[]
  /** time each phase of every step (profile()) */
  profile?: boolean
  /** token rows of a prompt pass computed together (pass()); 0 or absent = no prompt passes */
  promptRows?: number
  /** check the spec only: the engine skips its own weight copies (int4 tiles), which a 1B model
   *  would otherwise build twice at load */
  trial?: boolean
}

export interface NativeAddon {
  create(spec: NativeSpec): object
  step(
    handle: object,
    lo: number,
    n: number,
    capacity: number,
    ids: Int32Array,
    pos: Int32Array,
    logits: Float32Array
  ): void
  /** a prompt pass of kv.length token rows; out[m] = the logits line row m writes, −1 none */
  pass(
    handle: object,
    capacity: number,
    kv: Int32Array,
    pos: Int32Array,
    ids: Int32Array,
    out: Int32Array,
    logits: Float32Array
  ): void
  destroy(handle: object): void
  profile(handle: object): NativeProfile
  /** GB/s with which `threads` threads read a `bytes` buffer, best of three (benchmarks' bound) */
  readBandwidth(bytes: number, threads: number): number
  /** the kernels this build runs: SIMD, and whether int4 prompt chunks run on AMX (amx.h) */
  info(): { simd: string; amx: boolean }
  /**
   * y[m][j0, j1) = x[m] · W[:, j] by the prompt chunks' fp32 GEMM (kernels.h gemmF32) over [K, N]
   * weights, through their bf16 halves when `halves`; for tests. Throws in builds without AVX-512.
   */
  gemmF32(
    x: Float32Array,
    w: Float32Array,
    M: number,
    K: number,
    N: number,
    j0: number,
    j1: number,
    y: Float32Array,
    halves: boolean
  ): void
}

/** What the session worker needs to open the engine (runner.ts RunnerSetup.native); structured-clonable. */
export interface NativeSetup {
  addonPath: string
  plan: NativePlan
  /** where close() writes the engine's per-phase decode profile (LoadModelOptions.profile) */
  profileFile?: string
  /** prompt passes too, this many token rows at a time (LoadModelOptions.promptKernels); absent = decode only */
  promptRows?: number
}

/** µs of wall time per phase of the decode steps since open, and the step count (decoder.cc profile). */
export type NativeProfile = Record<string, number> & { steps: number }

/** The runner's shared buffers the engine reads and writes in place (runner.ts RunnerSetup). */
export interface NativeBuffers {
  capacity: number
  keys: Float32Array[]
  values: Float32Array[]
  /** the RoPE tables, by graph input name */
  inputs: readonly { name: string; data: Float32Array }[]
  /** the per-row LoRA buffers, by graph input name */
  rowInputs: readonly { name: string; data: Float32Array; rowDims: number[] }[]
}

/** A pass as the runner has it (model/step-plan.ts Pass) with the cache's current layout. */
export interface NativePass {
  lo: number
  n: number
  S: number
  ids: BigInt64Array
  newPos: BigInt64Array
  newCount: Int32Array
  /** per row: flat index (b·S + position) of the token whose logits come back */
  lastIndex: BigInt64Array
  capacity: number
}

export function loadNativeAddon(path: string): NativeAddon {
  try {
    return createRequire(import.meta.url)(path) as NativeAddon
  } catch (err) {
    throw new NativeUnavailableError(`cannot load the native decoder ${path}: ${(err as Error).message}`, {
      path
    })
  }
}

export interface PrepareOptions extends Omit<CompileOptions, 'source'> {
  /** the model.onnx directory of the built graph (its weights.bin and tensors.json) */
  builtDir: string
  config: ModelConfig
  format: WeightFormat
  threads: number
  /** the engine's source; default compile.ts DECODER_SOURCE */
  source?: string
}

/**
 * Everything the worker needs, checked on the caller's thread: the model is supported, its
 * tensors are where the plan says, the engine compiles and loads here. Throws NativeUnavailableError
 * saying which of those failed.
 */
export async function prepareNativeDecode(o: PrepareOptions): Promise<NativeSetup & { simd: string }> {
  const plan = await nativePlan(o.builtDir, o.config, o.format, o.threads)
  const addonPath = await compileNative({
    ...(o.source ? { source: o.source } : {}),
    ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}),
    ...(o.compiler ? { compiler: o.compiler } : {})
  })
  const addon = loadNativeAddon(addonPath)
  // a trial create over one-row, one-position buffers: the engine checks the whole spec (tensor
  // sizes, block sizes, weights.bin) here, so `auto` can still fall back to ORT instead of the
  // session worker failing to start
  try {
    addon.destroy(addon.create(trialSpec(plan)))
  } catch (err) {
    throw new NativeUnavailableError(`the native decoder refused this model: ${(err as Error).message}`, {
      builtDir: o.builtDir
    })
  }
  return { addonPath, plan, simd: addon.info().simd }
}

function trialSpec(plan: NativePlan): NativeSpec {
  const kv = () => Array.from({ length: plan.layers }, () => new Float32Array(plan.kvHeads * plan.headDim))
  return {
    ...plan,
    // one thread: the trial never steps, so it needs no workers to start and stop
    threads: 1,
    trial: true,
    maxRows: 1,
    capacity: 1,
    ropeCos: new Float32Array(plan.headDim / 2).fill(1),
    ropeSin: new Float32Array(plan.headDim / 2),
    keys: kv(),
    values: kv(),
    lora: []
  }
}

/** The runner's LoRA row buffers as the engine's list (each target's A with its B). */
function loraOf(rowInputs: NativeBuffers['rowInputs'], layers: number): NativeLora[] {
  const byName = new Map(rowInputs.map((r) => [r.name, r]))
  const out: NativeLora[] = []
  for (let l = 0; l < layers; l++) {
    PROJECTIONS.forEach((t, target) => {
      const a = byName.get(loraA(l, t))
      const b = byName.get(loraB(l, t))
      if (!a || !b) return
      out.push({
        layer: l,
        target,
        a: a.data,
        b: b.data,
        rank: a.rowDims[1]!,
        in: a.rowDims[0]!,
        out: b.rowDims[1]!
      })
    })
  }
  if (out.length * 2 !== rowInputs.length)
    throw new NativeUnavailableError('the native decoder found per-row inputs that are not LoRA A/B pairs', {
      inputs: rowInputs.map((r) => r.name)
    })
  return out
}

export class NativeDecoder {
  readonly simd: string
  private readonly addon: NativeAddon
  private handle: object | undefined
  private readonly vocab: number

  private readonly profileFile: string | undefined
  private readonly promptRows: number

  private constructor(
    addon: NativeAddon,
    handle: object,
    vocab: number,
    promptRows: number,
    profileFile?: string
  ) {
    this.addon = addon
    this.handle = handle
    this.vocab = vocab
    this.promptRows = promptRows
    this.profileFile = profileFile
    this.simd = addon.info().simd
  }

  /** Loads the compiled engine and hands it the plan plus the runner's shared buffers. */
  static open(native: NativeSetup, buffers: NativeBuffers): NativeDecoder {
    const addon = loadNativeAddon(native.addonPath)
    const table = (name: string) => {
      const t = buffers.inputs.find((i) => i.name === name)
      if (!t) throw new NativeUnavailableError(`the runner has no ${name} table for the native decoder`)
      return t.data
    }
    const p = native.plan
    const rowFloats = p.kvHeads * buffers.capacity * p.headDim
    const spec: NativeSpec = {
      ...p,
      maxRows: buffers.keys[0]!.length / rowFloats,
      capacity: buffers.capacity,
      ropeCos: table(ROPE_COS),
      ropeSin: table(ROPE_SIN),
      keys: buffers.keys,
      values: buffers.values,
      lora: loraOf(buffers.rowInputs, p.layers),
      profile: native.profileFile !== undefined,
      promptRows: native.promptRows ?? 0
    }
    return new NativeDecoder(addon, addon.create(spec), p.vocab, spec.promptRows ?? 0, native.profileFile)
  }

  /** whether it runs prompt passes (S > 1) too (NativeSetup.promptRows) */
  get prompts(): boolean {
    return this.promptRows > 0
  }

  /** One pass; returns each row's last token's logits [n, vocab]. Synchronous. */
  run(pass: NativePass): Float32Array {
    if (!this.handle) throw new NativeUnavailableError('the native decoder was closed')
    if (pass.S === 1) return this.decode(pass, this.handle)
    if (!this.prompts)
      throw new NativeUnavailableError(
        `this native decoder runs decode passes only (S = 1), got S = ${pass.S}: it was opened without promptRows`
      )
    return this.prompt(pass, this.handle)
  }

  /** a prompt pass: every real token of every row, one engine row each, in position order */
  private prompt(pass: NativePass, handle: object): Float32Array {
    const { n, S } = pass
    let M = 0
    for (let b = 0; b < n; b++) M += pass.newCount[b]!
    const kv = new Int32Array(M)
    const pos = new Int32Array(M)
    const ids = new Int32Array(M)
    const out = new Int32Array(M).fill(-1)
    let m = 0
    for (let b = 0; b < n; b++) {
      const last = Number(pass.lastIndex[b]!)
      for (let k = 0; k < pass.newCount[b]!; k++, m++) {
        kv[m] = pass.lo + b
        pos[m] = Number(pass.newPos[b * S + k]!)
        ids[m] = Number(pass.ids[b * S + k]!)
        if (b * S + k === last) out[m] = b
      }
    }
    const logits = new Float32Array(n * this.vocab)
    this.addon.pass(handle, pass.capacity, kv, pos, ids, out, logits)
    return logits
  }

  private decode(pass: NativePass, handle: object): Float32Array {
    const { n } = pass
    const ids = new Int32Array(n)
    const pos = new Int32Array(n)
    for (let m = 0; m < n; m++) {
      ids[m] = Number(pass.ids[m]!)
      // a dummy row of the range (step-plan.ts) is skipped: nothing written, logits left zero
      pos[m] = pass.newCount[m]! > 0 ? Number(pass.newPos[m]!) : -1
    }
    const logits = new Float32Array(n * this.vocab)
    this.addon.step(handle, pass.lo, n, pass.capacity, ids, pos, logits)
    return logits
  }

  close(): void {
    if (this.handle && this.profileFile)
      writeFileSync(this.profileFile, JSON.stringify(this.addon.profile(this.handle)))
    if (this.handle) this.addon.destroy(this.handle)
    this.handle = undefined
  }
}
