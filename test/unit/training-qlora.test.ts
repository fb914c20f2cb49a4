// QLoRA-style training over an int8/int4 base (`openlora train --base-format`, quantized-base.ts):
// the training graph stores serving's quantized bytes and dequantizes them inside the graph. The
// loss and LoRA gradients must equal those of the plain fp32 graph run on a checkpoint holding the
// dequantized weights (made here by the quantizer itself), differ from the fp32 base's by a small
// bounded amount, and a short int4 run must lower the loss and serve on an int4 node. No PyTorch
// reference: PyTorch has no identical int4 format (bitsandbytes' NF4 is another code book).
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeSafetensors, loadSafetensors, openCheckpoint } from '../../src/runtime/formats/safetensors.ts'
import { buildDecoderGraph } from '../../src/runtime/graph/decoder.ts'
import { familyOf } from '../../src/runtime/model/families/index.ts'
import { readModelConfig } from '../../src/runtime/model/index.ts'
import { loraFromAdapter } from '../../src/runtime/training/lora.ts'
import {
  dequantizeBase,
  type QuantizedFormat,
  quantizeBase,
  servingPadIn,
  servingZeroPoints
} from '../../src/runtime/training/quantized-base.ts'
import { type StepResult, Trainer } from '../../src/runtime/training/trainer.ts'

const FIX = join(import.meta.dirname, '..', 'fixtures', 'train')
const tokensOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'tokens.json'), 'utf8')) as number[][]

/** ‖a − b‖ / ‖b‖ */
function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0
  let den = 0
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2
    den += b[i]! ** 2
  }
  return Math.sqrt(num / den)
}

/**
 * A copy of a fixture whose Linear weights are what `format` dequantizes them to; a tied head
 * becomes an untied lm_head holding the dequantized embedding (serving quantizes the head, the
 * embedding lookup stays fp32).
 */
async function dequantizedCopy(src: string, format: QuantizedFormat): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'openlora-qlora-'))
  const cfg = await readModelConfig(src)
  const fam = familyOf(cfg)
  const tensors = await loadSafetensors(join(src, 'model.safetensors'))
  const out = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>()
  for (const [name, t] of tensors)
    out.set(name, { dtype: 'F32', shape: t.shape, data: t.data as Float32Array })
  for (let l = 0; l < cfg.numLayers; l++)
    for (const m of fam.layer(cfg, l).modules) {
      const t = out.get(`${m.path}.weight`)!
      t.data = dequantizeBase(t.data, m.rows, m.cols, format, servingPadIn(cfg, m.parts))
    }
  const json = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'))
  const headSrc = cfg.tieWordEmbeddings ? fam.embedName : fam.lmHead
  const head = dequantizeBase(out.get(headSrc)!.data, cfg.vocabSize, cfg.hiddenSize, format)
  out.set(fam.lmHead, { dtype: 'F32', shape: [cfg.vocabSize, cfg.hiddenSize], data: head })
  json.tie_word_embeddings = false
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json))
  copyFileSync(join(src, 'generation_config.json'), join(dir, 'generation_config.json'))
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(out))
  return dir
}

/** ‖Ŵ − W‖ / ‖W‖ over every base Linear of a fixture */
async function weightError(src: string, format: QuantizedFormat): Promise<number> {
  const cfg = await readModelConfig(src)
  const fam = familyOf(cfg)
  const tensors = await loadSafetensors(join(src, 'model.safetensors'))
  let [num, den] = [0, 0]
  for (let l = 0; l < cfg.numLayers; l++)
    for (const m of fam.layer(cfg, l).modules) {
      const w = tensors.get(`${m.path}.weight`)!.data as Float32Array
      const d = dequantizeBase(w, m.rows, m.cols, format, servingPadIn(cfg, m.parts))
      for (let i = 0; i < w.length; i++) {
        num += (d[i]! - w[i]!) ** 2
        den += w[i]! ** 2
      }
    }
  return Math.sqrt(num / den)
}

async function evaluate(
  dir: string,
  fixture: string,
  baseFormat?: 'fp32' | QuantizedFormat
): Promise<StepResult> {
  const src = join(FIX, fixture)
  const cfg = await readModelConfig(dir)
  const state = await loraFromAdapter(cfg, join(src, 'adapter'))
  const tr = await Trainer.create(dir, cfg, state, tokensOf(src), { baseFormat })
  try {
    return await tr.evaluate()
  } finally {
    await tr.close()
  }
}

/** worst relative error over every LoRA gradient */
function worstGrad(a: StepResult, b: StepResult): number {
  let worst = 0
  for (const [i, g] of a.gradA.entries()) worst = Math.max(worst, relErr(g, b.gradA[i]!))
  for (const [i, g] of a.gradB.entries()) worst = Math.max(worst, relErr(g, b.gradB[i]!))
  return worst
}

// llama: untied, K 64 and 96; bloom: tied head, ALiBi's padded heads (o_proj's blocks over padded
// inputs, gathered back), interleaved query_key_value rows; falcon: ffn 96 (int4: 3 blocks a row,
// so ONNX's contiguous zero-point packing differs from serving's per-row one); glm: interleaved
// partial rotary (o_proj's inputs permuted in serving's layout)
for (const fixture of ['llama', 'bloom', 'falcon', 'glm'])
  for (const format of ['int8', 'int4'] as const)
    test(`${fixture} ${format} base: loss and LoRA gradients = the fp32 graph on the dequantized checkpoint`, async () => {
      const src = join(FIX, fixture)
      const deq = await dequantizedCopy(src, format)
      try {
        const q = await evaluate(src, fixture, format)
        const ref = await evaluate(deq, fixture)
        const fp = await evaluate(src, fixture)
        const lossErr = Math.abs(q.loss - ref.loss) / ref.loss
        const gradErr = worstGrad(q, ref)
        assert.ok(lossErr < 1e-6, `loss ${q.loss} vs ${ref.loss} on the dequantized checkpoint`)
        assert.ok(gradErr < 1e-5, `LoRA gradients: worst rel. error ${gradErr}`)
        // the quantized base is not the fp32 one: it moves the loss and the gradients, by at most
        // the weights' relative quantization error (loss) and 15 times it (gradients; measured
        // 2.5–10×)
        const eps = await weightError(src, format)
        const moved = Math.abs(q.loss - fp.loss) / fp.loss
        const movedGrad = worstGrad(q, fp)
        assert.ok(moved > 0 && moved < eps, `loss moved ${moved} from the fp32 base; weight error ${eps}`)
        assert.ok(movedGrad > 0 && movedGrad < 15 * eps, `gradients moved ${movedGrad}; weight error ${eps}`)
      } finally {
        rmSync(deq, { recursive: true, force: true })
      }
    })

// the training graph's codes are the bytes an int8/int4 node builds (graph/decoder.ts), also where
// serving lays a module out differently (head-padded o_proj inputs on BLOOM and GLM)
for (const fixture of ['llama', 'bloom', 'glm'])
  for (const format of ['int8', 'int4'] as const)
    test(`${fixture} ${format}: the quantized base holds serving's codes, scales and zero points`, async () => {
      const src = join(FIX, fixture)
      const cfg = await readModelConfig(src)
      const fam = familyOf(cfg)
      const ckpt = await openCheckpoint(src)
      const tmp = mkdtempSync(join(tmpdir(), 'openlora-qlora-serve-'))
      try {
        const source = { get: (n: string) => ckpt.read(n), has: (n: string) => ckpt.has(n) }
        const { graph } = buildDecoderGraph(cfg, source, {
          targets: [],
          weightFormat: format,
          dataPath: join(tmp, 'weights.bin')
        })
        graph.finishExternalData()
        const data = readFileSync(join(tmp, 'weights.bin'))
        const bytesOf = (name: string): Uint8Array => {
          const t = graph.initializers.find((i) => i.name === name)
          assert.ok(t, `serving graph has ${name}`)
          if (t.rawData) return Uint8Array.from(t.rawData)
          const at = (k: string) => Number(t.externalData!.find((e) => e.key === k)!.value)
          return Uint8Array.from(data.subarray(at('offset'), at('offset') + at('length')))
        }
        const lw = fam.layer(cfg, 0)
        for (const [proj, name] of [
          ['o_proj', 'model.layers.0.o'],
          ['down_proj', 'model.layers.0.down']
        ] as const) {
          const m = lw.modules.find((x) => x.parts.some((q) => q.proj === proj))!
          const qb = quantizeBase(
            ckpt.read(`${m.path}.weight`),
            m.rows,
            m.cols,
            format,
            servingPadIn(cfg, m.parts)
          )
          const codes = bytesOf(`${name}.${format === 'int4' ? 'q4' : 'q8'}`)
          assert.equal(qb.codes, codes, `${name} codes`)
          const scales = bytesOf(`${name}.scales`)
          assert.equal(new Uint8Array(qb.scales.buffer), scales, `${name} scales`)
          if (format === 'int4')
            assert.equal(servingZeroPoints(qb), bytesOf(`${name}.zp4`), `${name} zero points`)
        }
      } finally {
        ckpt.close()
        rmSync(tmp, { recursive: true, force: true })
      }
    })

test('the stored codes are serving bytes: int4 zero points repacked per row and back', () => {
  // 3 blocks a row (odd): serving packs ceil(3/2) = 2 bytes a row, ONNX 1.5 bytes a row
  const [N, K] = [5, 96]
  const w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)))
  const qb = quantizeBase(w, N, K, 'int4')
  assert.is(qb.kb, 3)
  assert.is(qb.zeroPoints.length, Math.ceil((N * 3) / 2))
  const d = dequantizeBase(w, N, K, 'int4')
  let err = 0
  for (let i = 0; i < w.length; i++) err = Math.max(err, Math.abs(d[i]! - w[i]!) / 7)
  assert.ok(err > 0 && err < 0.15, `int4 error ${err}`)
})

test.run()
