// A single-consumer async queue between the engine's step loop (producer) and one request's
// `for await` (consumer). The loop never waits on a consumer: events are buffered (a request
// produces at most maxNewTokens + 1 small events). Leaving the loop early (break, throw) calls
// `onClose`, which cancels the request so its row and slot are freed.
export class EventChannel<T> implements AsyncIterableIterator<T> {
  private readonly buffer: T[] = []
  private waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined
  private ended = false
  private error: unknown
  private readonly onClose: () => void

  constructor(onClose: () => void) {
    this.onClose = onClose
  }

  push(value: T): void {
    if (this.ended) return
    if (this.waiting !== undefined) {
      const w = this.waiting
      this.waiting = undefined
      w.resolve({ value, done: false })
    } else this.buffer.push(value)
  }

  end(): void {
    if (this.ended) return
    this.ended = true
    this.settleWaiter()
  }

  fail(err: unknown): void {
    if (this.ended) return
    this.ended = true
    this.error = err
    this.settleWaiter()
  }

  get closed(): boolean {
    return this.ended
  }

  next(): Promise<IteratorResult<T>> {
    if (this.buffer.length > 0) return Promise.resolve({ value: this.buffer.shift()!, done: false })
    if (this.ended) {
      if (this.error !== undefined) {
        const e = this.error
        this.error = undefined
        return Promise.reject(e)
      }
      return Promise.resolve({ value: undefined, done: true })
    }
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject }
    })
  }

  return(): Promise<IteratorResult<T>> {
    if (!this.ended) {
      this.ended = true
      this.buffer.length = 0
      this.onClose()
    }
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this
  }

  private settleWaiter(): void {
    const w = this.waiting
    if (w === undefined) return
    this.waiting = undefined
    if (this.error !== undefined) {
      const e = this.error
      this.error = undefined
      w.reject(e)
    } else w.resolve({ value: undefined, done: true })
  }
}
