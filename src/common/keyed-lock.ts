// One promise chain per key: work on the same key runs one at a time in call order, work on
// different keys runs side by side. Stores use it where a read-modify-write of a record must not
// interleave with another (a client's channels, a datanet's versions) without a database lock.
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>()

  /** Runs fn after every earlier fn on `key` has settled; a failure does not block the next one. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => {})
    this.tails.set(key, tail)
    try {
      return await run
    } finally {
      // the last in line forgets the key, so the map holds only keys with work queued
      if (this.tails.get(key) === tail) this.tails.delete(key)
    }
  }
}
