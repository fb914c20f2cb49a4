// Training jobs started over the gateway (what a ModelFactory dashboard page drives): a queue that
// runs one job at a time through the node's TrainingProvider (the same one /openlora/train uses)
// and keeps each job's state, loss curve, and result (CID + signed record) for polling. The last
// MAX_KEPT jobs are kept; older finished ones are forgotten.
import { randomUUID } from 'node:crypto'
import type { TrainingProvider, TrainJobRequest } from '../protocols/training/train-protocol.ts'
import type { SignedTrainingRecord } from '../runtime/training/record.ts'

export const MAX_KEPT = 100
/** Queued jobs beyond this are refused: each one holds the trainer for minutes. */
export const MAX_QUEUED = 8

export type JobState = 'queued' | 'running' | 'done' | 'failed'

export interface TrainingJob {
  id: string
  state: JobState
  request: TrainJobRequest
  /** loss at each finished step, before its update */
  losses: number[]
  steps: number
  createdAt: number
  finishedAt: number | null
  cid: string | null
  record: SignedTrainingRecord | null
  error: string | null
}

export class TrainingJobs {
  readonly #provider: TrainingProvider
  readonly #jobs = new Map<string, TrainingJob>()
  #chain: Promise<void> = Promise.resolve()
  readonly #abort = new AbortController()

  constructor(provider: TrainingProvider) {
    this.#provider = provider
  }

  /** Queues a job; undefined when the queue is full. */
  start(request: TrainJobRequest): TrainingJob | undefined {
    const waiting = [...this.#jobs.values()].filter((j) => j.state === 'queued' || j.state === 'running')
    if (waiting.length >= MAX_QUEUED) return undefined
    const job: TrainingJob = {
      id: randomUUID(),
      state: 'queued',
      request,
      losses: [],
      steps: request.steps,
      createdAt: Date.now(),
      finishedAt: null,
      cid: null,
      record: null,
      error: null
    }
    this.#jobs.set(job.id, job)
    this.#forgetOld()
    this.#chain = this.#chain.then(() => this.#run(job))
    return job
  }

  async #run(job: TrainingJob): Promise<void> {
    job.state = 'running'
    try {
      const r = await this.#provider.train(
        job.request,
        (_step, loss) => {
          job.losses.push(loss)
        },
        this.#abort.signal
      )
      job.cid = r.cid
      job.record = r.record
      job.state = 'done'
    } catch (err) {
      job.error = (err as Error).message
      job.state = 'failed'
    } finally {
      job.finishedAt = Date.now()
    }
  }

  #forgetOld(): void {
    for (const [id, j] of this.#jobs) {
      if (this.#jobs.size <= MAX_KEPT) return
      if (j.state === 'done' || j.state === 'failed') this.#jobs.delete(id)
    }
  }

  get(id: string): TrainingJob | undefined {
    return this.#jobs.get(id)
  }

  list(): TrainingJob[] {
    return [...this.#jobs.values()].reverse()
  }

  /** Stops the running job at its next step and waits for the queue to settle. */
  async close(): Promise<void> {
    this.#abort.abort()
    await this.#chain
  }
}
