// The model's session runs in a worker thread: the event loop keeps turning while a step computes
// (libp2p and RPC stay responsive), and in-process mode, which blocks, gives the same logits.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { type LoadedModel, loadModel } from '../../src/runtime/model/index.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-worker-'))
const PROMPT = Array.from({ length: 900 }, (_, i) => (i * 13 + 5) % 512)

/** Event-loop turns (setImmediate callbacks) that ran while a long prefill step was in flight. */
async function turnsDuringStep(model: LoadedModel): Promise<{ turns: number; logits: Float32Array }> {
  const seq = model.allocSequence()
  let done = false
  let turns = 0
  const step = model.step([{ seq, tokens: PROMPT, slot: 0 }]).then((l) => {
    done = true
    return l[0]!
  })
  await new Promise<void>((resolve) => {
    const tick = () => {
      if (done) return resolve()
      turns++
      setImmediate(tick)
    }
    setImmediate(tick)
  })
  const logits = await step
  model.freeSequence(seq)
  return { turns, logits }
}

test('a step in the worker leaves the event loop free; in-process gives the same logits', async () => {
  const dir = join(root, 'model')
  // 8 layers and a 900-token prompt: a step long enough (tens of ms) that the loop turns many times
  await makeModel({
    out: dir,
    preset: 'tiny',
    seed: 4,
    overrides: { num_hidden_layers: 8, max_position_embeddings: 1024 }
  })
  const opts = {
    cacheDir: join(root, 'cache'),
    maxBatch: 1,
    maxSeqLen: 1000,
    pool: { slots: 1, maxRank: 1, targets: [] }
  }
  const worker = await loadModel(dir, opts)
  const inProcess = await loadModel(dir, { ...opts, worker: false })
  try {
    const w = await turnsDuringStep(worker)
    const p = await turnsDuringStep(inProcess)
    // in-process, the synchronous run (ORT, or the native engine this fp32 prompt runs on where the
    // CPU has AVX-512) holds the loop from before its first turn or the step's end: at most one turn
    assert.ok(p.turns <= 1, `event loop turned ${p.turns} times during the in-process step`)
    assert.ok(w.turns >= 3, `event loop turned ${w.turns} times during the worker's step`)
    let d = 0
    for (let i = 0; i < w.logits.length; i++) d = Math.max(d, Math.abs(w.logits[i]! - p.logits[i]!))
    assert.ok(d <= 1e-5, `worker and in-process logits differ by ${d}`)
  } finally {
    await worker.dispose()
    await inProcess.dispose()
  }
})

test('a disposed model rejects new steps instead of hanging', async () => {
  const dir = join(root, 'model')
  const model = await loadModel(dir, {
    cacheDir: join(root, 'cache'),
    maxBatch: 1,
    maxSeqLen: 16,
    pool: { slots: 1, maxRank: 1, targets: [] }
  })
  const seq = model.allocSequence()
  await model.dispose()
  try {
    await model.step([{ seq, tokens: [1], slot: 0 }])
    assert.unreachable('step after dispose should reject')
  } catch (err) {
    assert.match((err as Error).message, /disposed/)
  }
})

test.after(() => rmSync(root, { recursive: true, force: true }))
test.run()
