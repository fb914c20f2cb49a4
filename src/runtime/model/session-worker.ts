// Worker-thread entry: owns the ORT session of one model and runs requests from the main thread
// one at a time. See runner.ts for why the session lives here.
import { parentPort, workerData } from 'node:worker_threads'
import { type RunnerSetup, type RunRequest, SessionRunner } from './runner.ts'

const port = parentPort
if (!port) throw new Error('session-worker.ts must run as a worker thread')

let runner: SessionRunner | undefined
try {
  runner = await SessionRunner.open(workerData as RunnerSetup)
  port.postMessage({ type: 'ready' })
} catch (err) {
  port.postMessage({
    type: 'init-error',
    error: { name: (err as Error).name, message: (err as Error).message }
  })
}

port.on('message', async (msg: { type: 'run'; id: number; req: RunRequest } | { type: 'release' }) => {
  if (msg.type === 'release') {
    await runner?.release()
    port.postMessage({ type: 'released' })
    return
  }
  try {
    const logits = await runner!.run(msg.req)
    // hand the logits' buffer over instead of copying it (a 128k vocabulary is 0.5 MB a row) when
    // it is theirs alone; a view into a larger or shared buffer is copied as before
    const own =
      logits.buffer instanceof ArrayBuffer &&
      logits.byteOffset === 0 &&
      logits.byteLength === logits.buffer.byteLength
    port.postMessage({ type: 'result', id: msg.id, logits }, own ? [logits.buffer as ArrayBuffer] : [])
  } catch (err) {
    port.postMessage({
      type: 'result',
      id: msg.id,
      error: { name: (err as Error).name, message: (err as Error).message }
    })
  }
})
