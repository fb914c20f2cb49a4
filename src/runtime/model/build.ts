// Builds a checkpoint's ONNX graph once and keeps it on disk, keyed by the weights hash, the
// builder version and the LoRA target set (the only build inputs that change the graph), so a
// node's second start only loads `model.onnx` + `weights.bin`.
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidParametersError } from '../../common/errors.ts'
import { createLogger, type Logger } from '../../common/log.ts'
import { type Hex, sha256Hex } from '../../crypto/hash.ts'
import { weightsHash as computeWeightsHash } from '../formats/identity.ts'
import { type CheckpointReader, openCheckpoint } from '../formats/safetensors.ts'
import {
  BUILDER_VERSION,
  buildDecoderGraph,
  OPSETS,
  type WeightSource,
  weightFormatKey
} from '../graph/decoder.ts'
import type { GraphBuilder } from '../graph/proto.ts'
import type { WeightFormat } from '../weight-format.ts'
import type { ModelConfig } from './config.ts'
import { MANIFEST_FILE, writeManifest } from './manifest.ts'
import { ModelWeightsError } from './weights-error.ts'

export { ModelWeightsError }

/** Each tensor read from disk when the builder asks for it, checked against the config's shape. */
function weightSource(checkpoint: CheckpointReader): WeightSource {
  return {
    has: (name) => checkpoint.has(name),
    get(name, shape) {
      const t = checkpoint.info(name)
      if (!t) throw new ModelWeightsError(`checkpoint has no tensor "${name}"`, { tensor: name })
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new ModelWeightsError(
          `tensor "${name}" has shape [${t.shape.join(', ')}]; the config needs [${shape.join(', ')}]`,
          { tensor: name, shape: t.shape, expected: shape }
        )
      }
      return checkpoint.read(name)
    }
  }
}

/** A weight source that reports each tensor handed to the graph builder (a CLI progress bar). */
function counted(
  src: WeightSource,
  total: number,
  onTensor?: (done: number, total: number) => void
): WeightSource {
  if (!onTensor) return src
  let done = 0
  return {
    has: (name) => src.has(name),
    get(name, shape) {
      const t = src.get(name, shape)
      onTensor(Math.min(++done, total), total)
      return t
    }
  }
}

export interface BuiltModel {
  /** path of model.onnx (its weights.bin sits next to it) */
  modelPath: string
  weightsHash: Hex
  /** true when this call found the graph already built */
  cached: boolean
  buildMs: number
}

export interface BuildOptions {
  cacheDir: string
  targets: readonly string[]
  /** how projection weights are stored (graph/decoder.ts); default fp32 */
  weightFormat?: WeightFormat
  /** int8 only: one block size for every Linear (graph/decoder.ts GraphOptions.int8Block; benchmarks) */
  int8Block?: number
  /** int8/int4 only: build the prompt-pass graph (graph/decoder.ts GraphOptions.prefill) */
  prefill?: boolean
  /** a hash computed earlier (skips re-reading the weights) */
  weightsHash?: Hex
  log?: Logger
  /** told each checkpoint tensor read (and quantized) into the graph: done of the checkpoint's total */
  onTensor?: (done: number, total: number) => void
}

/** what the prompt-pass graph's Linears are (graph/linear.ts prefillLinear), in its cache key */
const PREFILL_GRAPH_KEY = 'prefill-dqmm-s8col'
const MODEL_FILE = 'model.onnx'
const DATA_FILE = 'weights.bin'
const META_FILE = 'build.json'

/**
 * A complete build: its meta (written last) names these weights and its data file and tensor
 * manifest exist (graphs cached before the manifest existed are rebuilt once).
 */
async function isBuilt(out: string, weightsHash: Hex): Promise<boolean> {
  try {
    const meta = JSON.parse(await readFile(join(out, META_FILE), 'utf8')) as { weightsHash?: string }
    await stat(join(out, DATA_FILE))
    await stat(join(out, MANIFEST_FILE))
    return meta.weightsHash === weightsHash
  } catch {
    return false
  }
}

export async function ensureBuiltModel(
  dir: string,
  cfg: ModelConfig,
  opts: BuildOptions
): Promise<BuiltModel> {
  const log = opts.log ?? createLogger('runtime:build')
  const weightsHash = opts.weightsHash ?? (await computeWeightsHash(dir))
  const targets = [...opts.targets].sort()
  const weightFormat = opts.weightFormat ?? 'fp32'
  // fp32 keys stay as they were before weight formats existed, so cached fp32 graphs stay valid
  if (
    opts.int8Block !== undefined &&
    (weightFormat !== 'int8' || ![16, 32, 64, 128].includes(opts.int8Block))
  )
    throw new InvalidParametersError(
      `int8Block ${opts.int8Block} with weight format ${weightFormat}: allowed only with int8, one of 16, 32, 64, 128`,
      { field: 'int8Block', value: opts.int8Block }
    )
  if (opts.prefill && weightFormat === 'fp32')
    throw new InvalidParametersError('a prefill graph exists only for the int8 and int4 formats', {
      field: 'prefill',
      value: weightFormat
    })
  const formatKey = weightFormatKey(weightFormat, opts.int8Block)
  // The config shapes the graph beyond the weights (windows, norms, soft-caps, rotary layout…).
  // Graphs of the Llama shape without sliding windows are byte-identical to those built before
  // the family registry, so their keys stay as they were; every other graph is keyed by its
  // config too (a Mistral graph cached before windows were computed must not be reused).
  const plainLlama = (cfg.family === 'llama' || cfg.family === 'qwen2') && cfg.slidingWindow === null
  const arch = plainLlama ? {} : { config: sha256Hex(JSON.stringify(cfg)).slice(2, 34) }
  const keyed =
    formatKey === undefined
      ? { weightsHash, builder: BUILDER_VERSION, targets, ...arch }
      : {
          weightsHash,
          builder: BUILDER_VERSION,
          targets,
          weightFormat: formatKey,
          ...(opts.prefill ? { graph: PREFILL_GRAPH_KEY } : {}),
          ...arch
        }
  const key = sha256Hex(JSON.stringify(keyed)).slice(2, 34)
  const out = join(opts.cacheDir, key)
  const modelPath = join(out, MODEL_FILE)
  if (await isBuilt(out, weightsHash)) return { modelPath, weightsHash, cached: true, buildMs: 0 }

  const started = performance.now()
  // build in a private directory and rename, so a crash or a concurrent build never leaves a
  // half-written model where the cache lookup would trust it
  const tmp = `${out}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`
  await mkdir(tmp, { recursive: true })
  try {
    const checkpoint = await openCheckpoint(dir)
    let graph: GraphBuilder | undefined
    try {
      graph = buildDecoderGraph(
        cfg,
        counted(weightSource(checkpoint), checkpoint.names().length, opts.onTensor),
        {
          targets,
          weightFormat,
          ...(opts.int8Block === undefined ? {} : { int8Block: opts.int8Block }),
          ...(opts.prefill ? { prefill: true } : {}),
          dataPath: join(tmp, DATA_FILE)
        }
      ).graph
    } finally {
      checkpoint.close()
    }
    const bytes = graph.finishExternalData()
    await writeFile(join(tmp, MODEL_FILE), graph.encodeModel(OPSETS))
    await writeManifest(tmp, graph.placements, bytes)
    const buildMs = Math.round(performance.now() - started)
    await writeFile(
      join(tmp, META_FILE),
      JSON.stringify({ ...keyed, weightFormat: formatKey ?? weightFormat, weightBytes: bytes, buildMs })
    )
    // another process may have finished the same build meanwhile: keep whichever landed first
    if (await isBuilt(out, weightsHash)) {
      await rm(tmp, { recursive: true, force: true })
      return { modelPath, weightsHash, cached: true, buildMs: 0 }
    }
    // rename never replaces a directory that has files: when `out` exists, either another process
    // landed the same build first (use it; never delete it, a loader may be reading it) or `out`
    // is an unusable older build (e.g. without tensors.json): move that aside and try once more
    for (let attempt = 0; ; attempt++) {
      try {
        await rename(tmp, out)
        break
      } catch (err) {
        if (await isBuilt(out, weightsHash)) {
          await rm(tmp, { recursive: true, force: true })
          return { modelPath, weightsHash, cached: true, buildMs: 0 }
        }
        if (attempt > 0) throw err
        const old = `${out}.old-${process.pid}-${randomBytes(6).toString('hex')}`
        await rename(out, old).catch(() => {})
        await rm(old, { recursive: true, force: true })
      }
    }
    log.info('built model graph', {
      weightsHash,
      targets,
      weightFormat,
      buildMs,
      weightBytes: bytes,
      dir: out
    })
    return { modelPath, weightsHash, cached: false, buildMs }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true })
    throw err
  }
}
