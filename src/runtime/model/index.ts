// loadModel: a Hugging Face checkpoint directory → a LoadedModel (one ORT session, KV cache, LoRA
// slot pools). The contract with the serving engine is in docs/INTERFACES.md ("Runtime internals").
import { access, readFile } from 'node:fs/promises'
import { availableParallelism, homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createLogger, type Logger } from '../../common/log.ts'
import type { DecodeKernels, PromptKernels } from '../decode-kernels.ts'
import type { ExecutionProviderName } from '../execution-provider.ts'
import {
  type NativeSetup,
  NativeUnavailableError,
  nativeDecodeSupport,
  prepareNativeDecode
} from '../native/decoder.ts'
import { Tokenizer } from '../tokenizer.ts'
import type { WeightFormat } from '../weight-format.ts'
import { ensureBuiltModel } from './build.ts'
import { type ModelConfig, ModelConfigError, modelIdOf, parseModelConfig } from './config.ts'
import { MODEL_DEFAULTS } from './defaults.ts'
import { modelLayout } from './layout.ts'
import { ModelSession } from './loaded-model.ts'

export { ModelWeightsError } from './build.ts'
export { NoFreeSequenceError, SequenceError, type StepRow } from './loaded-model.ts'
export { type AdapterWeights, type LoraPair, SlotPoolError, type SlotPools } from './pools.ts'

export interface LoadModelOptions {
  /** where built graphs are kept; default ~/.cache/openlora/models */
  cacheDir?: string
  executionProvider?: ExecutionProviderName
  /** ORT intra-op threads; default: ORT's choice (one per core) */
  intraOpThreads?: number
  /** KV-cache rows = sequences that can be in flight at once */
  maxBatch?: number
  /** tokens per sequence (prompt + output); default min(2048, the model's limit) */
  maxSeqLen?: number
  /** LoRA slot pools; targets [] builds a graph without LoRA inputs */
  pool?: { slots?: number; maxRank?: number; targets?: readonly string[] }
  /** fp32 (default, exact) or int8 (block-quantized projections and lm_head; see graph/decoder.ts) */
  weightFormat?: WeightFormat
  /** int8 only: one block size (16–128) for every Linear instead of the widest dividing each K; for A/B benchmarks */
  int8Block?: number
  /**
   * run passes with several tokens a row (prompts) on a second graph whose Linears are int8 GEMMs
   * over the same quantized weights (graph/linear.ts prefillLinear): 3-10× faster matmuls for
   * prompts, at the cost of a second session holding the layers' weights as int8 (+1 byte a
   * weight) and its own fp32 embedding. Opt-in (default false): its activations are quantized per
   * tensor, so a row's prompt logits depend on the other rows of its pass (runtime-int8.test.ts'
   * mixed-batch test fails with it), and int8's prompt KL grows 2.4× (past phi3's family
   * goldens' int8 tolerance); int4's error stays that of MatMulNBits. Ignored for fp32, and where
   * prompts run on the native engine (promptKernels), which needs no second graph.
   */
  prefillGraph?: boolean
  /**
   * what runs decode passes (one new token a row; prompts: promptKernels): `native` = the
   * compiled engine (runtime/native/, issue 17; throws NativeUnavailableError saying why when the
   * model or machine cannot run it), `ort` = ONNX Runtime, `auto` (default) = native where it can
   * run, else ORT with one info line saying why
   */
  decodeKernels?: DecodeKernels
  /**
   * what runs prompt passes (several new tokens a row) when decode passes run natively: `ort`,
   * `native` (the same engine, PROMPT_ROWS token rows at a time; int8/int4 from an int8 copy of
   * the weights, +1 byte a weight instead of the prefill graph's, on AMX where the CPU has it and
   * on AVX-512 VNNI elsewhere: 2-6x ORT's MatMulNBits prompts, 1.2-1.4x the prefill graph's; fp32
   * on a register-blocked GEMM and 16-row attention, 1.2-1.3x ORT's; on CPUs without AVX-512 VNNI
   * decode's plain kernels: docs/NATIVE-DECODE.md "Prompts"), or `auto` (default): native where
   * the engine has its AVX-512 VNNI kernels, else ORT. Ignored when decode passes run on ORT.
   */
  promptKernels?: PromptKernels
  /** where the native engine's compiled addon is cached; default $OPENLORA_NATIVE_CACHE or <tmpdir>/openlora-native */
  nativeCacheDir?: string
  /** run ORT in a worker thread so the event loop stays free during a step; default true */
  worker?: boolean
  /** ORT session config entries; default { 'session.intra_op.allow_spinning': '0' } (see loaded-model.ts) */
  sessionConfig?: Record<string, string>
  /**
   * write ORT's per-kernel profile (Chrome trace JSON) to `<profile>_<date>.json` when the model
   * is disposed; summarise it with `npm run bench:profile -- FILE`. Slows every step: diagnosis only.
   */
  profile?: string
  log?: Logger
  /** told each checkpoint tensor imported (and quantized) when the graph is built, not when cached */
  onTensor?: (done: number, total: number) => void
}

export { MODEL_DEFAULTS }

export interface LoadedModel extends ModelSession {
  modelId: string
  /** graph build time of this start (0 when the cached graph was used) */
  buildMs: number
  /** true when the graph came from the on-disk cache */
  cachedGraph: boolean
  /** the checkpoint directory */
  dir: string
  /** from tokenizer.json (+ tokenizer_config.json); undefined when the checkpoint has none (ids only) */
  tokenizer: Tokenizer | undefined
}

async function readJson(path: string, required: boolean): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new ModelConfigError(`cannot read ${path}: ${(err as Error).message}`, { file: path })
  }
  if (text.length > 16 * 1024 * 1024) throw new ModelConfigError(`${path} is over 16 MiB`, { file: path })
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ModelConfigError(`${path} is not valid JSON: ${(err as Error).message}`, { file: path })
  }
}

export async function readModelConfig(dir: string): Promise<ModelConfig> {
  return parseModelConfig(
    await readJson(join(dir, 'config.json'), true),
    await readJson(join(dir, 'generation_config.json'), false)
  )
}

export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const log = opts.log ?? createLogger('runtime:model')
  const abs = resolve(dir)
  const config = await readModelConfig(abs)
  const targets = opts.pool?.targets ?? MODEL_DEFAULTS.pool.targets
  const buildOpts = {
    cacheDir: opts.cacheDir ?? join(homedir(), '.cache', 'openlora', 'models'),
    targets,
    weightFormat: opts.weightFormat,
    ...(opts.int8Block === undefined ? {} : { int8Block: opts.int8Block }),
    log,
    ...(opts.onTensor ? { onTensor: opts.onTensor } : {})
  }
  const built = await ensureBuiltModel(abs, config, buildOpts)
  const native = await nativeSetup(dirname(built.modelPath), config, opts, log)
  // the prefill graph serves prompts only where they run on ORT
  const wantPrefill =
    native?.promptRows === undefined &&
    (opts.weightFormat === 'int4' ? opts.prefillGraph !== false : opts.prefillGraph === true)
  const prefill =
    wantPrefill && (opts.weightFormat === 'int8' || opts.weightFormat === 'int4')
      ? await ensureBuiltModel(abs, config, { ...buildOpts, prefill: true, weightsHash: built.weightsHash })
      : undefined
  let tokenizer: Tokenizer | undefined
  try {
    await access(join(abs, 'tokenizer.json'))
    tokenizer = await Tokenizer.fromDir(abs)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    log.warn('checkpoint has no tokenizer.json: the model takes token ids only', { dir: abs })
  }
  const maxPos = config.maxPositionEmbeddings
  const session = await ModelSession.create(built.modelPath, modelLayout(config), built.weightsHash, {
    executionProvider: opts.executionProvider ?? 'cpu',
    intraOpThreads: opts.intraOpThreads,
    maxBatch: opts.maxBatch ?? MODEL_DEFAULTS.maxBatch,
    maxSeqLen: opts.maxSeqLen ?? Math.min(MODEL_DEFAULTS.maxSeqLen, maxPos),
    pool: {
      slots: opts.pool?.slots ?? MODEL_DEFAULTS.pool.slots,
      maxRank: opts.pool?.maxRank ?? MODEL_DEFAULTS.pool.maxRank,
      targets
    },
    worker: opts.worker,
    sessionConfig: opts.sessionConfig,
    profile: opts.profile,
    ...(prefill ? { prefillModelPath: prefill.modelPath } : {}),
    ...(native ? { native } : {}),
    log
  })
  const model: LoadedModel = Object.assign(session, {
    modelId: modelIdOf(config, abs),
    buildMs: built.buildMs + (prefill?.buildMs ?? 0),
    cachedGraph: built.cached && (prefill?.cached ?? true),
    dir: abs,
    tokenizer
  })
  log.info('model loaded', {
    modelId: model.modelId,
    weightsHash: built.weightsHash,
    executionProvider: session.executionProvider,
    decodeKernels: session.decodeKernels,
    promptKernels: session.promptKernels,
    cachedGraph: built.cached,
    buildMs: built.buildMs
  })
  return model
}

/** token rows of a native prompt pass computed together: the engine's scratch height */
export const PROMPT_ROWS = 256

/**
 * Whether prompt passes run on the native engine: by name, or under `auto` where it has its
 * AVX-512 kernels: fp32 on its register-blocked GEMM (the 135M shape's 512-token prompt 380 ms
 * against ORT's 460-486), int8/int4 on an int8 copy of the weights, on AMX or AVX-512 VNNI (the 1B
 * int4 32-token prompt on AMD Zen 4 96-109 ms against the prefill graph's 122-156;
 * docs/NATIVE-DECODE.md "Prompts")
 */
function nativePrompts(mode: PromptKernels, _format: WeightFormat, simd: string): boolean {
  if (mode !== 'auto') return mode === 'native'
  return simd === 'avx512vnni'
}

/**
 * The native engine's setup when decode passes should run on it (LoadModelOptions.decodeKernels),
 * else undefined; `native` throws the reason it cannot, `auto` logs it once.
 */
async function nativeSetup(
  builtDir: string,
  config: ModelConfig,
  opts: LoadModelOptions,
  log: Logger
): Promise<NativeSetup | undefined> {
  const mode = opts.decodeKernels ?? 'auto'
  if (mode === 'ort') return undefined
  const format = opts.weightFormat ?? 'fp32'
  let why: string | null =
    (opts.executionProvider ?? 'cpu') !== 'cpu'
      ? `the ${opts.executionProvider} execution provider (the native engine runs on the CPU)`
      : nativeDecodeSupport(config, format)
  if (why === null) {
    try {
      const setup = await prepareNativeDecode({
        builtDir,
        config,
        format,
        threads: opts.intraOpThreads ?? availableParallelism(),
        ...(opts.nativeCacheDir ? { cacheDir: opts.nativeCacheDir } : {})
      })
      log.debug('native decode engine ready', { simd: setup.simd, addon: setup.addonPath })
      return {
        addonPath: setup.addonPath,
        plan: setup.plan,
        ...(opts.profile ? { profileFile: `${opts.profile}-native.json` } : {}),
        ...(nativePrompts(opts.promptKernels ?? 'auto', format, setup.simd)
          ? { promptRows: PROMPT_ROWS }
          : {})
      }
    } catch (err) {
      if (!(err instanceof NativeUnavailableError)) throw err
      if (mode === 'native') throw err
      why = err.message
    }
  } else if (mode === 'native')
    throw new NativeUnavailableError(`decodeKernels "native": the native decoder does not compute ${why}`, {
      reason: why
    })
  log.info('decode passes run on ONNX Runtime kernels', { reason: why })
  return undefined
}
