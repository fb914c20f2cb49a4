// The step loop of one base model: admits queued requests into free KV-cache rows (each with its
// adapter's slot pinned), runs one forward pass over all running rows, samples, streams events,
// and frees a row and its slot the moment its request ends. ORT runs the step on its own
// threads; the loop only awaits it, so the event loop stays free between and during steps.

import { hasCode } from '../../common/errors.ts'
import type { Logger } from '../../common/log.ts'
import type { AdapterLease } from '../adapters/store.ts'
import type { EventChannel } from './channel.ts'
import type { EngineLimits } from './config.ts'
import { BusyError, EngineError } from './errors.ts'
import { type PlannableJob, planStep, type StepRow } from './scheduler.ts'
import type { TextTracker } from './text.ts'
import type { FinishReason, GenerationParams, TokenEvent } from './types.ts'

export interface RunnerModel {
  readonly modelId: string
  /** KV-cache rows and positions per row the model was loaded with (LoadedModel has both) */
  readonly maxBatch?: number
  readonly maxSeqLen?: number
  allocSequence(): number
  freeSequence(seq: number): void
  step(rows: StepRow[]): Promise<Float32Array[]>
}

export interface RunnerAdapters {
  acquire(cid: string): Promise<AdapterLease>
}

/** What the runner needs of a constraint (src/runtime/constrain/token-mask.ts JsonConstraint). */
export interface TokenConstraint {
  mask(logits: Float32Array, tokensLeft: number): void
  advance(tokenId: number): void
  /** nothing may follow: the request ends here */
  readonly closed: boolean
}

export type Sampler = (logits: Float32Array, params: GenerationParams, rng: () => number) => number

export interface Job extends PlannableJob {
  adapter: string | null
  /** structured output: masks each step's logits and follows the drawn tokens */
  constraint?: TokenConstraint
  params: GenerationParams
  stopIds: Set<number>
  rng: () => number
  channel: EventChannel<TokenEvent>
  text: TextTracker
  outputIds: number[]
  lease?: AdapterLease
  inStep: boolean
  cancelRequested: boolean
  /** called once when the request ends, however it ends */
  onFinished?: () => void
  submittedAt: number
  admittedAt?: number
  firstTokenAt?: number
}

export interface RunnerCounters {
  submitted: number
  completed: number
  aborted: number
  failed: number
  rejectedBusy: number
  /** times a request went back to the queue because every adapter slot was pinned */
  slotWaits: number
  promptTokens: number
  generatedTokens: number
  steps: number
  stepRows: number
  stepTokens: number
  stepMs: number
}

/** All counters at zero: a runner's start, and the base the engine sums runners onto. */
export function zeroCounters(): RunnerCounters {
  return {
    submitted: 0,
    completed: 0,
    aborted: 0,
    failed: 0,
    rejectedBusy: 0,
    slotWaits: 0,
    promptTokens: 0,
    generatedTokens: 0,
    steps: 0,
    stepRows: 0,
    stepTokens: 0,
    stepMs: 0
  }
}

export class ModelRunner {
  readonly model: RunnerModel
  private readonly adapters: RunnerAdapters | undefined
  private readonly sample: Sampler
  /** the engine's limits, bounded by what this model was loaded with */
  readonly limits: EngineLimits
  private readonly log: Logger
  private readonly queue: Job[] = []
  /** admitted jobs in admission order: loading their adapter, prefilling or decoding */
  private readonly running: Job[] = []
  private wakeUp: (() => void) | undefined
  private loopDone: Promise<void> | undefined
  private stopped = false
  /** set when the pool had no free slot; cleared when a running job frees one */
  private slotStarved = false
  private avgJobMs = 0
  readonly counters: RunnerCounters = zeroCounters()
  /** told the rows of every step (the running batch size histogram, docs/METRICS.md) */
  private readonly onStep: ((rows: number) => void) | undefined

  constructor(
    model: RunnerModel,
    adapters: RunnerAdapters | undefined,
    sample: Sampler,
    limits: EngineLimits,
    log: Logger,
    onStep?: (rows: number) => void
  ) {
    this.onStep = onStep
    this.model = model
    this.adapters = adapters
    this.sample = sample
    this.limits = limits
    this.log = log
  }

  start(): void {
    this.loopDone ??= this.loop()
  }

  async stop(): Promise<void> {
    this.stopped = true
    const err = new EngineError('ENGINE_STOPPED', 'the engine was stopped while this request ran')
    for (const job of [...this.queue, ...this.running]) {
      if (job.inStep) job.cancelRequested = true
      else this.finish(job, err)
    }
    this.wake()
    await this.loopDone
    for (const job of [...this.running]) this.finish(job, err)
  }

  get queued(): number {
    return this.queue.length
  }

  get active(): number {
    return this.running.length
  }

  /** Throws BUSY when the queue is full; otherwise the job runs as soon as a row is free. */
  submit(job: Job): void {
    if (this.stopped) throw new EngineError('ENGINE_STOPPED', 'the engine is stopped')
    // waiting = beyond the rows: admission happens on the loop's next turn, so count both lists
    if (this.queue.length + this.running.length >= this.limits.maxQueued + this.limits.maxBatch) {
      this.counters.rejectedBusy += 1
      throw new BusyError(this.queue.length, this.limits.maxQueued, this.retryAfterMs())
    }
    this.counters.submitted += 1
    this.queue.push(job)
    this.wake()
  }

  /** Ends the request now; a row inside a running step is freed as soon as that step returns. */
  cancel(job: Job): void {
    if (job.phase === 'finished') return
    if (job.inStep) {
      job.cancelRequested = true
      return
    }
    this.finish(job, 'abort')
  }

  /** How long until a queued request would likely start: the average request time for each
   * batch-full of requests ahead of it. */
  retryAfterMs(): number {
    const per = this.avgJobMs > 0 ? this.avgJobMs : 1000
    const batches = Math.ceil((this.queue.length + 1) / this.limits.maxBatch)
    return Math.min(60_000, Math.max(100, Math.round(per * batches)))
  }

  private wake(): void {
    const w = this.wakeUp
    this.wakeUp = undefined
    w?.()
  }

  private admit(): void {
    while (this.queue.length > 0 && this.running.length < this.limits.maxBatch) {
      const idx = this.slotStarved ? this.queue.findIndex((j) => j.adapter === null) : 0
      if (idx < 0) return
      const job = this.queue.splice(idx, 1)[0]!
      job.phase = 'loading'
      this.running.push(job)
      if (job.adapter === null || this.adapters === undefined) {
        if (job.adapter !== null) {
          this.finish(
            job,
            new EngineError('INVALID_REQUEST', `model ${this.model.modelId} serves no adapters`)
          )
          continue
        }
        this.activate(job)
        continue
      }
      this.adapters.acquire(job.adapter).then(
        (lease) => {
          if (job.phase === 'finished') {
            lease.release()
            return
          }
          job.lease = lease
          job.slot = lease.slot
          this.activate(job)
          this.wake()
        },
        (err: unknown) => {
          if (job.phase === 'finished') return
          if (hasCode(err, 'NO_FREE_SLOT')) {
            // every slot is pinned by running rows: wait in line for one to finish
            this.slotStarved = true
            this.counters.slotWaits += 1
            this.running.splice(this.running.indexOf(job), 1)
            job.phase = 'queued'
            this.queue.unshift(job)
            return
          }
          this.finish(job, err)
        }
      )
    }
  }

  private activate(job: Job): void {
    try {
      job.seq = this.model.allocSequence()
    } catch (err) {
      // the engine never admits more rows than the model has; this is a bug, not load
      this.finish(job, err)
      return
    }
    job.phase = 'prefill'
    job.admittedAt = performance.now()
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.admit()
      // acquires of hot and warm adapters settle within a turn of the event loop: let them, so
      // requests that arrived together prefill together instead of one step apart
      if (this.running.some((j) => j.phase === 'loading')) {
        await new Promise((r) => setImmediate(r))
        if (this.stopped) break
      }
      const ready = this.running.filter((j) => j.phase === 'prefill' || j.phase === 'decode')
      const plan = planStep(ready, this.limits)
      if (plan.rows.length === 0) {
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve
        })
        continue
      }
      for (const job of plan.jobs) job.inStep = true
      const t0 = performance.now()
      let logits: Float32Array[] | undefined
      let failure: unknown
      try {
        logits = await this.model.step(plan.rows)
      } catch (err) {
        failure = err
      }
      const t1 = performance.now()
      this.counters.steps += 1
      this.counters.stepRows += plan.rows.length
      this.counters.stepTokens += plan.decodeRows + plan.prefillTokens
      this.counters.stepMs += t1 - t0
      this.onStep?.(plan.rows.length)
      for (let i = 0; i < plan.jobs.length; i++) {
        const job = plan.jobs[i]!
        job.inStep = false
        if (job.phase === 'finished') continue
        if (job.cancelRequested) {
          this.finish(
            job,
            this.stopped ? new EngineError('ENGINE_STOPPED', 'the engine was stopped') : 'abort'
          )
          continue
        }
        if (logits === undefined || logits[i] === undefined) {
          this.log.error('step failed', { model: this.model.modelId, err: failure })
          this.finish(
            job,
            new EngineError(
              'STEP_FAILED',
              `forward pass failed: ${(failure as Error)?.message ?? 'no logits'}`,
              {},
              { cause: failure }
            )
          )
          continue
        }
        if (job.phase === 'prefill') job.prefilled += plan.rows[i]!.tokens.length
        if (!plan.samples[i]) continue
        const c = job.constraint
        if (c) c.mask(logits[i]!, job.params.maxNewTokens - job.outputIds.length)
        const token = this.sample(logits[i]!, job.params, job.rng)
        c?.advance(token)
        this.onToken(job, token, t1)
      }
    }
  }

  private onToken(job: Job, token: number, now: number): void {
    job.firstTokenAt ??= now
    if (job.stopIds.has(token)) {
      this.finish(job, 'stop')
      return
    }
    job.outputIds.push(token)
    const { delta, stopped } = job.text.update(job.outputIds)
    job.channel.push({
      type: 'token',
      id: token,
      text: delta,
      index: job.outputIds.length - 1,
      atMs: now - job.submittedAt
    })
    if (stopped || job.constraint?.closed || job.outputIds.length >= job.params.maxNewTokens) {
      this.finish(job, stopped || job.constraint?.closed ? 'stop' : 'length')
      return
    }
    job.phase = 'decode'
    job.nextToken = token
  }

  private finish(job: Job, outcome: FinishReason | unknown): void {
    if (job.phase === 'finished') return
    const wasRunning = this.running.indexOf(job)
    if (wasRunning >= 0) this.running.splice(wasRunning, 1)
    else {
      const q = this.queue.indexOf(job)
      if (q >= 0) this.queue.splice(q, 1)
    }
    job.phase = 'finished'
    job.onFinished?.()
    if (job.seq >= 0) {
      this.model.freeSequence(job.seq)
      job.seq = -1
    }
    if (job.lease !== undefined) {
      job.lease.release()
      this.slotStarved = false
    }
    const now = performance.now()
    const totalMs = now - job.submittedAt
    if (typeof outcome === 'string') {
      const reason = outcome as FinishReason
      if (reason === 'abort') this.counters.aborted += 1
      else this.counters.completed += 1
      this.counters.promptTokens += job.promptIds.length
      this.counters.generatedTokens += job.outputIds.length
      this.avgJobMs = this.avgJobMs === 0 ? totalMs : this.avgJobMs * 0.9 + totalMs * 0.1
      job.channel.push({
        type: 'done',
        finishReason: reason,
        promptIds: job.promptIds,
        outputIds: job.outputIds,
        text: job.text.text,
        usage: { promptTokens: job.promptIds.length, outputTokens: job.outputIds.length },
        timings: {
          queuedMs: (job.admittedAt ?? now) - job.submittedAt,
          firstTokenMs: job.firstTokenAt === undefined ? totalMs : job.firstTokenAt - job.submittedAt,
          totalMs
        }
      })
      job.channel.end()
    } else {
      this.counters.failed += 1
      job.channel.fail(outcome)
    }
    this.wake()
  }
}
