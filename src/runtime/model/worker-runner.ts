// Main-thread side of a session that runs in a worker thread (session-worker.ts). Requests are
// answered in order; the worker is unref'd while idle so a forgotten model never keeps the
// process alive, and a crashed worker fails every pending and later run with its error.
import { Worker } from 'node:worker_threads'
import { OpenLoraError } from '../../common/errors.ts'
import type { Runner, RunnerSetup, RunRequest } from './runner.ts'

export class SessionWorkerError extends OpenLoraError<'SESSION_WORKER_FAILED'> {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('SESSION_WORKER_FAILED', message, details)
  }
}

type Reply =
  | { type: 'ready' }
  | { type: 'init-error'; error: { name: string; message: string } }
  | { type: 'result'; id: number; logits?: Float32Array; error?: { name: string; message: string } }
  | { type: 'released' }

export class WorkerRunner implements Runner {
  private readonly worker: Worker
  private readonly pending = new Map<number, { resolve(l: Float32Array): void; reject(e: Error): void }>()
  private nextId = 0
  private failure: Error | undefined
  private onReleased: (() => void) | undefined

  private constructor(worker: Worker) {
    this.worker = worker
  }

  static open(setup: RunnerSetup): Promise<WorkerRunner> {
    const worker = new Worker(new URL('./session-worker.ts', import.meta.url), { workerData: setup })
    const runner = new WorkerRunner(worker)
    return new Promise((resolve, reject) => {
      worker.on('message', (m: Reply) => {
        if (m.type === 'ready') {
          worker.unref()
          resolve(runner)
        } else if (m.type === 'init-error') {
          void worker.terminate()
          reject(
            new SessionWorkerError(`model session failed to start: ${m.error.message}`, {
              cause: m.error.name
            })
          )
        } else if (m.type === 'released') runner.onReleased?.()
        else runner.settle(m)
      })
      worker.on('error', (err) => {
        runner.fail(err)
        reject(err)
      })
      worker.on('exit', (code) =>
        runner.fail(new SessionWorkerError(`model session worker exited (code ${code})`))
      )
    })
  }

  private settle(m: Extract<Reply, { type: 'result' }>): void {
    const p = this.pending.get(m.id)
    if (!p) return
    this.pending.delete(m.id)
    if (this.pending.size === 0) this.worker.unref()
    if (m.error)
      p.reject(new SessionWorkerError(`model run failed: ${m.error.message}`, { cause: m.error.name }))
    else p.resolve(m.logits!)
  }

  private fail(err: Error): void {
    this.failure ??= err
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
  }

  run(req: RunRequest): Promise<Float32Array> {
    if (this.failure) return Promise.reject(this.failure)
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.ref()
      this.worker.postMessage({ type: 'run', id, req })
    })
  }

  async release(): Promise<void> {
    if (!this.failure) {
      await new Promise<void>((resolve) => {
        this.onReleased = resolve
        this.worker.ref()
        this.worker.postMessage({ type: 'release' })
      })
    }
    this.failure ??= new SessionWorkerError('the model was disposed')
    await this.worker.terminate()
  }
}
