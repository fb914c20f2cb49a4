// The response frames of a job run in process (InferService.submit through InferClient's
// `local`), handed to the client's frame loop in order like a stream's frames.
import type { ResponseFrame } from '../protocols/infer/codec.ts'

/** Frames of an in-process job in order; the job's end (or an abort) ends the iteration. */
export class FrameQueue implements AsyncIterable<{ frame: ResponseFrame }> {
  readonly #items: ResponseFrame[] = []
  #ended = false
  #wake: (() => void) | undefined

  push(frame: ResponseFrame): void {
    this.#items.push(frame)
    this.#wake?.()
  }

  end(): void {
    this.#ended = true
    this.#wake?.()
  }

  async *[Symbol.asyncIterator](): AsyncIterator<{ frame: ResponseFrame }> {
    while (true) {
      const frame = this.#items.shift()
      if (frame !== undefined) {
        yield { frame }
        if (frame.t === 'result' || frame.t === 'error') return
        continue
      }
      if (this.#ended) return
      await new Promise<void>((resolve) => {
        this.#wake = resolve
      })
      this.#wake = undefined
    }
  }
}
