// The two sides of bench:vs-llamacpp: one request and a group of concurrent requests on our
// Engine and on node-llama-cpp, timed the same way (greedy, stop at eos or the token budget), and
// the memory-bandwidth figures that bound batch-1 decode.
import type { LlamaContext, Token } from 'node-llama-cpp'
import type { Engine } from '../../src/runtime/engine/engine.ts'
import type { TokenEvent } from '../../src/runtime/engine/types.ts'
import type { ModelConfig } from '../../src/runtime/model/config.ts'
import type { LoadedModel } from '../../src/runtime/model/index.ts'

/** new tokens per request, set once by the benchmark from its options */
export const sides = { newTokens: 64 }

// ---- our side -------------------------------------------------------------------------------

type Done = Extract<TokenEvent, { type: 'done' }>
async function drain(it: AsyncIterable<TokenEvent>): Promise<Done> {
  for await (const ev of it) if (ev.type === 'done') return ev
  throw new Error('no done event')
}

export interface Single {
  promptTokS: number
  decodeTokS: number
}
export interface Many {
  tokens: number
  ms: number
}

export async function oursSingle(engine: Engine, model: LoadedModel, p: number[]): Promise<Single> {
  const d = await drain(
    engine.generate({
      model: model.modelId,
      promptIds: p,
      params: { maxNewTokens: sides.newTokens, temperature: 0 }
    })
  )
  return {
    promptTokS: p.length / (d.timings.firstTokenMs / 1000),
    decodeTokS: (d.usage.outputTokens - 1) / ((d.timings.totalMs - d.timings.firstTokenMs) / 1000)
  }
}

export async function oursMany(
  engine: Engine,
  model: LoadedModel,
  adapters: string[],
  ps: number[][]
): Promise<Many> {
  const t0 = performance.now()
  const dones = await Promise.all(
    ps.map((p, i) =>
      drain(
        engine.generate({
          model: model.modelId,
          adapter: adapters[i % adapters.length],
          promptIds: p,
          params: { maxNewTokens: sides.newTokens, temperature: 0 }
        })
      )
    )
  )
  return { tokens: dones.reduce((s, d) => s + d.usage.outputTokens, 0), ms: performance.now() - t0 }
}

// ---- llama.cpp side ---------------------------------------------------------------------------

/** Greedy generation on one sequence, stopping at eos or newTokens like our engine. */
async function llamaGenerate(
  seq: ReturnType<LlamaContext['getSequence']>,
  p: number[],
  eos: Set<number>,
  onFirst?: () => void,
  maxNew = sides.newTokens
): Promise<number> {
  await seq.clearHistory()
  const it = seq.evaluate(p as Token[], { temperature: 0 })
  let n = 0
  try {
    for (;;) {
      const r = await it.next()
      if (r.done) break
      n++
      if (n === 1) onFirst?.()
      if (n >= maxNew || eos.has(r.value)) break
    }
  } finally {
    await it.return()
  }
  return n
}

/** One request; `maxNew` 1 times prompt processing alone (decodeTokS is then 0). */
export async function llamaSingle(
  ctx: LlamaContext,
  p: number[],
  eos: Set<number>,
  maxNew = sides.newTokens
): Promise<Single> {
  const seq = ctx.getSequence()
  try {
    const t0 = performance.now()
    let t1 = t0
    const n = await llamaGenerate(
      seq,
      p,
      eos,
      () => {
        t1 = performance.now()
      },
      maxNew
    )
    const t2 = performance.now()
    const decodeTokS = n > 1 ? (n - 1) / ((t2 - t1) / 1000) : 0
    return { promptTokS: p.length / ((t1 - t0) / 1000), decodeTokS }
  } finally {
    seq.dispose()
  }
}

export async function llamaMany(ctxs: LlamaContext[], ps: number[][], eos: Set<number>): Promise<Many> {
  const seqs = ps.map((_, i) => ctxs[i % ctxs.length].getSequence())
  try {
    const t0 = performance.now()
    const counts = await Promise.all(ps.map((p, i) => llamaGenerate(seqs[i], p, eos)))
    return { tokens: counts.reduce((a, b) => a + b, 0), ms: performance.now() - t0 }
  } finally {
    for (const s of seqs) s.dispose()
  }
}

// ---- memory-bandwidth context ------------------------------------------------------------------

/** Weight bytes one decode token reads at `bytesPerWeight` (tied lm_head counted once more). */
export function weightBytesPerToken(c: ModelConfig, bytesPerWeight: number): number {
  const q = c.numHeads * c.headDim
  const kv = c.numKvHeads * c.headDim
  const perLayer = c.hiddenSize * (q + 2 * kv) + q * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize
  return bytesPerWeight * (c.numLayers * perLayer + c.vocabSize * c.hiddenSize)
}

/** Read bandwidth seen by a 2-array copy (bytes read + written per second), best of 3. */
export function copyBandwidth(): number {
  const n = 256 * 1024 * 1024
  const a = Buffer.alloc(n, 1)
  const b = Buffer.alloc(n)
  let best = 0
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now()
    a.copy(b)
    best = Math.max(best, (2 * n) / ((performance.now() - t0) / 1000))
  }
  return best
}

// each worker copies its own pair of buffers when told, and answers with the milliseconds it took
const COPY_WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const a = Buffer.alloc(workerData.bytes, 1)
const b = Buffer.alloc(workerData.bytes)
parentPort.on('message', (m) => {
  if (m === 'stop') return parentPort.close()
  const t0 = performance.now()
  a.copy(b)
  parentPort.postMessage(performance.now() - t0)
})
parentPort.postMessage(0)
`

/**
 * Copy bandwidth of `threads` threads copying at once (as many as decode runs on), bytes read +
 * written per second over all of them, best of 3. On the 2-core machine 1 and 2 threads both
 * copied ~19–22 GB/s; a read-only stream goes faster (ENVIRONMENT.md: 2-thread read ~48 or
 * ~75 GB/s), so a bound from a copy is low and a fraction of it flatters the engine: llama.cpp's
 * 2-thread Q4_0 decode read 1.01× this bound.
 */
export async function copyBandwidthThreads(threads: number, bytesEach = 128 * 1024 * 1024): Promise<number> {
  const { Worker } = await import('node:worker_threads')
  const workers = Array.from(
    { length: threads },
    () => new Worker(COPY_WORKER, { eval: true, workerData: { bytes: bytesEach } })
  )
  const next = (w: InstanceType<typeof Worker>) =>
    new Promise<number>((resolve, reject) => {
      w.once('message', resolve)
      w.once('error', reject)
    })
  try {
    await Promise.all(workers.map(next)) // buffers allocated and touched
    let best = 0
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now()
      const done = workers.map(next)
      for (const w of workers) w.postMessage('go')
      await Promise.all(done)
      best = Math.max(best, (2 * bytesEach * threads) / ((performance.now() - t0) / 1000))
    }
    return best
  } finally {
    for (const w of workers) await w.terminate()
  }
}
