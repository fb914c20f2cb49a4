// Issue 17: one quantized Linear at a time, to see which ONNX Runtime kernel variant is fastest per
// M (tokens in the pass) on this CPU, without building a whole model: MatMulNBits 4-bit with block
// 32/64/128, with or without zero points, accuracy_level 4 (int8 activations) or 1 (fp32, the
// weights dequantized inside the op), MatMulNBits 8-bit, and the int8 GEMM ops MLAS runs on
// VNNI/AMX (DynamicQuantizeMatMul: u8 activations × s8 per-column weights). Random weights:
// only time is measured (the logit error of a format is bench:vs-llamacpp's job).
//
//   npm run bench:kernels -- [--k 2048] [--n 16384] [--m 1,32,512] [--reps N] [--threads 2]
//                            [--variants a,b,...] [--json]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { OPSETS } from '../../src/runtime/graph/decoder.ts'
import { DT, GraphBuilder } from '../../src/runtime/graph/proto.ts'
import { quantizeRows } from '../../src/runtime/graph/quantize.ts'
import { quantizeRows4 } from '../../src/runtime/graph/quantize4.ts'
import { benchArgs } from './args.ts'

const args = benchArgs(
  'npm run bench:kernels -- [--k K] [--n N] [--m 1,32,512] [--reps N] [--threads N] [--variants a,b] [--json]',
  {
    k: { type: 'string', default: '2048' },
    n: { type: 'string', default: '8192' },
    m: { type: 'string', default: '1,32,512' },
    reps: { type: 'string', default: '5' },
    threads: { type: 'string', default: '2' },
    variants: { type: 'string' },
    json: { type: 'boolean', default: false }
  }
)
const K = Number(args.k)
const N = Number(args.n)
const Ms = args.m!.split(',').map(Number)

let seed = 1
const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32
const w = new Float32Array(N * K).map(() => (rand() - 0.5) * 0.1)

type Build = (g: GraphBuilder) => string
const nbits4 =
  (block: number, zp: boolean, acc: number): Build =>
  (g) => {
    const q = quantizeRows4(w, N, K, block)
    const kb = q.scales.length / N
    const ins = [
      'x',
      g.bytes('q4', q.q, [N, kb, block / 2]),
      g.weight('scales', q.scales, [N, kb]),
      ...(zp ? [g.bytes('zp4', q.zeroPoints, [q.zeroPoints.length])] : [])
    ]
    return g.op(
      'MatMulNBits',
      ins,
      { K, N, bits: 4, block_size: block, accuracy_level: acc },
      'com.microsoft'
    )
  }
const nbits8 =
  (block: number, acc: number): Build =>
  (g) => {
    const q = quantizeRows(w, N, K, block)
    const kb = q.scales.length / N
    const ins = ['x', g.bytes('q8', q.q, [N, kb, block]), g.weight('scales', q.scales, [N, kb])]
    return g.op(
      'MatMulNBits',
      ins,
      { K, N, bits: 8, block_size: block, accuracy_level: acc },
      'com.microsoft'
    )
  }
/** per-output-column symmetric int8 weights [K, N] (s8) for MLAS's u8s8 GEMM */
const dqmm: Build = (g) => {
  const wt = new Uint8Array(K * N)
  const scales = new Float32Array(N)
  for (let n = 0; n < N; n++) {
    let max = 0
    for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(w[n * K + k]!))
    scales[n] = max / 127 || 1
    for (let k = 0; k < K; k++) wt[k * N + n] = Math.round(w[n * K + k]! / scales[n]!) & 0xff
  }
  const b = g.int8('w8', wt, [K, N])
  return g.op('DynamicQuantizeMatMul', ['x', b, g.weight('bscale', scales, [N])], {}, 'com.microsoft')
}
const fp32: Build = (g) => {
  const wt = new Float32Array(K * N)
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = w[n * K + k]!
  return g.op('MatMul', ['x', g.weight('w', wt, [K, N])])
}

const VARIANTS: Record<string, Build> = {
  'q4-b32-zp-a4': nbits4(32, true, 4),
  'q4-b32-sym-a4': nbits4(32, false, 4),
  'q4-b64-zp-a4': nbits4(64, true, 4),
  'q4-b64-sym-a4': nbits4(64, false, 4),
  'q4-b128-zp-a4': nbits4(128, true, 4),
  'q4-b128-sym-a4': nbits4(128, false, 4),
  'q4-b32-zp-a1': nbits4(32, true, 1),
  'q8-b128-a4': nbits8(128, 4),
  'dqmm-s8': dqmm,
  fp32
}
const names = args.variants ? args.variants.split(',') : Object.keys(VARIANTS)
for (const v of names)
  if (!VARIANTS[v]) throw new Error(`unknown variant ${v}: ${Object.keys(VARIANTS).join(', ')}`)

const dir = mkdtempSync(join(tmpdir(), 'openlora-kernels-'))
const results: Record<string, Record<number, number>> = {}
try {
  for (const v of names) {
    const g = new GraphBuilder('w.bin')
    g.input('x', DT.FLOAT, ['m', K])
    g.node('Identity', [VARIANTS[v]!(g)], ['y'])
    g.output('y', DT.FLOAT, ['m', N])
    writeFileSync(join(dir, `${v}.onnx`), g.encodeModel(OPSETS))
    g.writeExternalData(join(dir, 'w.bin'))
    const s = await ort.InferenceSession.create(join(dir, `${v}.onnx`), {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: Number(args.threads),
      extra: { 'session.intra_op.allow_spinning': '1' }
    })
    results[v] = {}
    for (const M of Ms) {
      const x = new ort.Tensor(
        'float32',
        new Float32Array(M * K).map(() => rand() - 0.5),
        [M, K]
      )
      await s.run({ x })
      const times: number[] = []
      for (let r = 0; r < Number(args.reps); r++) {
        const t0 = performance.now()
        await s.run({ x })
        times.push(performance.now() - t0)
      }
      times.sort((a, b) => a - b)
      results[v]![M] = times[Math.floor(times.length / 2)]!
    }
    await s.release()
    if (!args.json)
      process.stdout.write(
        `${v.padEnd(16)} ${Ms.map((M) => `M=${M}: ${results[v]![M]!.toFixed(2)} ms`).join('  ')}\n`
      )
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
if (args.json) process.stdout.write(`${JSON.stringify({ K, N, threads: Number(args.threads), results })}\n`)
