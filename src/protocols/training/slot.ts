// One training job at a time per node, whichever path started it. A job takes every core the
// runtime is given and holds a training graph's memory, so a /openlora/train job and a gateway
// (ModelFactory page) job at once would each run at half speed and could run the machine out of
// memory. Both paths hold this slot while they train: the protocol takes it or refuses at once
// (BUSY with a retry estimate, so a remote client can go to another trainer before paying or
// waiting), the gateway's queue waits for it (its jobs are the operator's own, already queued
// and polled by the page). Waiters are served in order.

/** A held slot: the job reports its steps so others can be told when it should end. */
export interface TrainingLease {
  /** `done` of the job's steps have finished */
  progress(done: number): void
  release(): void
}

/** Retry hints: at least a second, at most ten minutes; this long when a job has no step yet. */
const MIN_RETRY_MS = 1_000
const MAX_RETRY_MS = 600_000
const UNKNOWN_RETRY_MS = 10_000

export class TrainingSlot {
  #held: { startedAt: number; steps: number; done: number; lastAt: number; what: string } | undefined
  readonly #waiters: { resolve: (l: TrainingLease) => void; steps: number; what: string }[] = []

  get busy(): boolean {
    return this.#held !== undefined
  }

  /** What holds the slot ("a protocol job, step 3 of 40"), for a refusal's message. */
  describe(): string {
    const h = this.#held
    return h ? `${h.what}, step ${h.done} of ${h.steps}` : 'nothing'
  }

  /** The slot for a job of `steps` steps, or undefined while another job holds it. */
  tryAcquire(steps: number, what: string): TrainingLease | undefined {
    if (this.#held) return undefined
    return this.#lease(steps, what)
  }

  /** Waits for the slot (in order); an abort while waiting rejects and leaves the queue. */
  acquire(steps: number, what: string, signal?: AbortSignal): Promise<TrainingLease> {
    signal?.throwIfAborted()
    if (!this.#held) return Promise.resolve(this.#lease(steps, what))
    return new Promise((resolve, reject) => {
      const w = { resolve, steps, what }
      this.#waiters.push(w)
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.#waiters.indexOf(w)
          if (i < 0) return // already handed the slot: its holder releases it
          this.#waiters.splice(i, 1)
          reject(signal.reason)
        },
        { once: true }
      )
    })
  }

  /**
   * About how long until the slot frees: the running job's remaining steps at its mean step time
   * so far (the waiters' jobs are not counted: a refused client retries against the queue anyway).
   */
  retryAfterMs(now = Date.now()): number {
    const h = this.#held
    if (!h) return 0
    if (h.done === 0) return UNKNOWN_RETRY_MS
    const perStep = (h.lastAt - h.startedAt) / h.done
    const left = Math.max(0, h.steps - h.done) * perStep - (now - h.lastAt)
    return Math.round(Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, left)))
  }

  #lease(steps: number, what: string): TrainingLease {
    const now = Date.now()
    const held = { startedAt: now, steps, done: 0, lastAt: now, what }
    this.#held = held
    let released = false
    return {
      progress: (done) => {
        if (released) return
        held.done = done
        held.lastAt = Date.now()
      },
      release: () => {
        if (released) return
        released = true
        this.#held = undefined
        const next = this.#waiters.shift()
        if (next) next.resolve(this.#lease(next.steps, next.what))
      }
    }
  }
}
