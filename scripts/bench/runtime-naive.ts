// The naive multi-adapter baseline of issue 4's benchmark: whenever the adapter changes, merge
// it into the base weights (W + scale·B·A) and build and start a fresh ONNX Runtime session
// without LoRA inputs. This is what serving LoRA costs without slot pools; it is kept to the
// benchmark (nothing in the node serves this way).
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { silentLogger } from '../../src/common/log.ts'
import type { PeftAdapter } from '../../src/runtime/adapters/peft.ts'
import type { TensorMap } from '../../src/runtime/formats/safetensors.ts'
import { buildDecoderGraph, OPSETS, type WeightSource } from '../../src/runtime/graph/decoder.ts'
import type { ModelConfig } from '../../src/runtime/model/config.ts'
import { modelLayout } from '../../src/runtime/model/layout.ts'
import { ModelSession } from '../../src/runtime/model/loaded-model.ts'
import type { WeightFormat } from '../../src/runtime/weight-format.ts'

const MLP = new Set(['gate_proj', 'up_proj', 'down_proj'])

function checkpointName(layer: number, target: string): string {
  return `model.layers.${layer}.${MLP.has(target) ? 'mlp' : 'self_attn'}.${target}.weight`
}

/** A copy of each targeted weight with the adapter folded in; untouched tensors are shared. */
export function mergeAdapter(base: TensorMap, adapter: PeftAdapter): TensorMap {
  const merged: TensorMap = new Map(base)
  for (const [layer, targets] of adapter.layers) {
    for (const [target, w] of targets) {
      const name = checkpointName(layer, target)
      const t = base.get(name)
      if (t === undefined) throw new Error(`base checkpoint has no ${name}`)
      const [out, inn] = t.shape as [number, number]
      const W = Float32Array.from(t.data)
      const { A, B, r, scale } = w
      for (let o = 0; o < out; o++) {
        const row = o * inn
        for (let k = 0; k < r; k++) {
          const b = scale * B[o * r + k]!
          if (b === 0) continue
          const arow = k * inn
          for (let i = 0; i < inn; i++) W[row + i]! += b * A[arow + i]!
        }
      }
      merged.set(name, { ...t, data: W })
    }
  }
  return merged
}

function source(tensors: TensorMap): WeightSource {
  return {
    has: (name) => tensors.has(name),
    get: (name) => {
      const t = tensors.get(name)
      if (t === undefined) throw new Error(`no tensor ${name}`)
      return t.data
    }
  }
}

/**
 * Builds the merged graph, writes it to `dir` and starts a batch-1 session on it; `buildMs` is
 * merge + graph build (+ quantization) + write, `sessionMs` the session start.
 */
export async function mergedSession(
  base: TensorMap,
  config: ModelConfig,
  adapter: PeftAdapter,
  dir: string,
  opts: {
    intraOpThreads: number
    maxSeqLen: number
    weightFormat: WeightFormat
    sessionConfig?: Record<string, string>
  }
): Promise<{ session: ModelSession; buildMs: number; sessionMs: number }> {
  const t0 = performance.now()
  // an int8 node would have to quantize the merged weights again: the same builder does that
  const { graph } = buildDecoderGraph(config, source(mergeAdapter(base, adapter)), {
    targets: [],
    weightFormat: opts.weightFormat
  })
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  graph.writeExternalData(join(dir, 'weights.bin'))
  await writeFile(join(dir, 'model.onnx'), graph.encodeModel(OPSETS))
  const t1 = performance.now()
  const session = await ModelSession.create(join(dir, 'model.onnx'), modelLayout(config), '0x00', {
    executionProvider: 'cpu',
    intraOpThreads: opts.intraOpThreads,
    maxBatch: 1,
    maxSeqLen: opts.maxSeqLen,
    pool: { slots: 1, maxRank: 1, targets: [] },
    sessionConfig: opts.sessionConfig,
    log: silentLogger
  })
  return { session, buildMs: t1 - t0, sessionMs: performance.now() - t1 }
}
