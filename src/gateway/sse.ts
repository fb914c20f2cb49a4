// Server-sent events as OpenAI streams them: `data: <json>\n\n` per chunk, `data: [DONE]` at the
// end, and a comment line as keep-alive while a job waits in a queue (so idle timeouts on the way
// do not cut a healthy stream).
import type { ServerResponse } from 'node:http'

const KEEPALIVE_MS = 15_000

export class SseStream {
  readonly #res: ServerResponse
  #timer: NodeJS.Timeout | undefined
  #last = Date.now()

  constructor(res: ServerResponse, headers: Record<string, string> = {}) {
    this.#res = res
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      ...headers
    })
    this.#timer = setInterval(() => {
      if (Date.now() - this.#last >= KEEPALIVE_MS) this.#write(': keep-alive\n\n')
    }, KEEPALIVE_MS / 3)
    this.#timer.unref()
  }

  get open(): boolean {
    return !this.#res.destroyed && !this.#res.writableEnded
  }

  send(data: unknown): void {
    this.#write(`data: ${JSON.stringify(data)}\n\n`)
  }

  done(): void {
    this.#write('data: [DONE]\n\n')
    this.end()
  }

  end(): void {
    clearInterval(this.#timer)
    if (this.open) this.#res.end()
  }

  #write(s: string): void {
    if (!this.open) return
    this.#last = Date.now()
    this.#res.write(s)
  }
}
