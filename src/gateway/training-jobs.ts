// Training jobs started over the gateway (what a ModelFactory dashboard page drives): a queue that
// runs one job at a time through the node's TrainingProvider (the same one /openlora/train uses),
// each waiting for the node's training slot, which /openlora/train jobs hold too (slot.ts),
// and keeps each job's state, loss curve, and result (CID + signed record) for polling. The last
// MAX_KEPT jobs are kept; older finished ones are forgotten. A finished job's adapter can be
// registered on-chain by the node's operator account (registration.ts checks the record first).
import { randomUUID } from 'node:crypto'
import type { ChainClient } from '../chain/client.ts'
import {
  type AdapterRegistration,
  AdapterRegistrationError,
  registerTrainedAdapter
} from '../protocols/training/registration.ts'
import { type TrainingLease, TrainingSlot } from '../protocols/training/slot.ts'
import type { TrainingProvider, TrainJobRequest } from '../protocols/training/train-protocol.ts'
import type { SignedTrainingRecord } from '../runtime/training/record.ts'
import { GatewayError } from './errors.ts'

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
  /** set once the adapter is registered on-chain from here */
  registration: AdapterRegistration | null
}

export class TrainingJobs {
  readonly #provider: TrainingProvider
  readonly #jobs = new Map<string, TrainingJob>()
  #chain: Promise<void> = Promise.resolve()
  readonly #abort = new AbortController()
  readonly #chainClient: () => ChainClient | undefined
  readonly #registering = new Set<string>()
  readonly #slot: TrainingSlot

  /**
   * `chain`: the node's chain client (operator account) once its chain service runs; none: no chain.
   * `slot`: the node's one training slot, shared with /openlora/train jobs (default: its own).
   */
  constructor(
    provider: TrainingProvider,
    opts: { chain?: () => ChainClient | undefined; slot?: TrainingSlot } = {}
  ) {
    this.#provider = provider
    this.#chainClient = opts.chain ?? (() => undefined)
    this.#slot = opts.slot ?? new TrainingSlot()
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
      error: null,
      registration: null
    }
    this.#jobs.set(job.id, job)
    this.#forgetOld()
    this.#chain = this.#chain.then(() => this.#run(job))
    return job
  }

  async #run(job: TrainingJob): Promise<void> {
    let lease: TrainingLease | undefined
    try {
      // queued until the node's slot is free (a peer's job may hold it): one job trains at a time
      lease = await this.#slot.acquire(job.request.steps, `gateway job ${job.id}`, this.#abort.signal)
      job.state = 'running'
      const r = await this.#provider.train(
        job.request,
        (step, loss) => {
          lease?.progress(step + 1)
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
      lease?.release()
      job.finishedAt = Date.now()
    }
  }

  /**
   * Registers a done job's adapter on-chain with the datanets of its record; undefined for an
   * unknown job. Errors are the gateway's: what is wrong and what to do.
   */
  async register(id: string, feePer1kTokens: bigint): Promise<TrainingJob | undefined> {
    const job = this.#jobs.get(id)
    if (!job) return undefined
    if (job.registration) return job
    if (job.state !== 'done' || !job.cid || !job.record)
      throw new GatewayError(
        409,
        'invalid_request_error',
        `training job ${id} is ${job.state}; register it once it is done`,
        {
          code: 'training_job_not_done'
        }
      )
    const client = this.#chainClient()
    if (!client)
      throw new GatewayError(
        400,
        'invalid_request_error',
        'this node has no chain configured, so it cannot register adapters on-chain. Start it with a chain (chain.preset local or testnet; `openlora start --demo` runs a local one), or register later with `openlora adapter register DIR`.',
        { code: 'chain_not_configured' }
      )
    if (this.#registering.has(id))
      throw new GatewayError(409, 'invalid_request_error', `training job ${id} is being registered`, {
        code: 'registration_in_progress'
      })
    this.#registering.add(id)
    try {
      job.registration = await registerTrainedAdapter(client, {
        cid: job.cid,
        record: job.record,
        feePer1kTokens
      })
      return job
    } catch (err) {
      if (err instanceof AdapterRegistrationError)
        throw new GatewayError(400, 'invalid_request_error', err.message, { code: 'registration_refused' })
      throw new GatewayError(
        502,
        'server_error',
        `the chain refused or failed the registration: ${(err as Error).message.split('\n')[0]}`,
        {
          code: 'chain_call_failed',
          cause: err
        }
      )
    } finally {
      this.#registering.delete(id)
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
