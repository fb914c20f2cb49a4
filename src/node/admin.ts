// Local admin endpoint: JSON over HTTP on 127.0.0.1 (never another interface) with a bearer
// token, both written to <dataDir>/admin.json (mode 0600) so only the node's user can reach it.
// `openlora peers` and the swarm launcher read that file and ask the running node. Services add
// their own read-only routes with `route()` and commands with `action()` (POST with a small JSON
// body, e.g. `openlora adapter add` on a running node). A long action (adapter fetch, datanet
// copy) reports progress through its context; a caller that sends `Accept: application/x-ndjson`
// gets those events as NDJSON lines and then the answer as the last line, so the CLI can draw a
// progress bar over one request (no job ids to poll, nothing left behind if it goes away).
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { join } from 'node:path'
import { foreignCode, OpenLoraError } from '../common/errors.ts'
import type { Logger } from '../common/log.ts'
import { z } from '../common/schema.ts'
import type { AdminAction, AdminActionContext, AdminHandler, AdminRoutes } from '../common/service.ts'

export const ADMIN_FILE = 'admin.json'
/** The answer to any admin call is small; a client refuses more so a wrong port cannot flood it. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024
/** An action's request body: a few paths and names. */
export const MAX_ACTION_BODY_BYTES = 64 * 1024
/** The content type of a streamed answer: `{ progress }` lines, then `{ result }` or `{ error, code }`. */
export const NDJSON = 'application/x-ndjson'
/**
 * A streamed action writes at most one progress line per this interval (the latest event wins,
 * and the last one is always written before the answer): a 4 KiB-chunk datanet copy makes
 * thousands of events, a bar redraws at 10 fps at most.
 */
const PROGRESS_INTERVAL_MS = 100

export type { AdminAction, AdminHandler }

/** JSON text of an answer (bigints as decimal strings). */
const jsonText = (body: unknown): string =>
  JSON.stringify(body, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))

/** The progress lines of one streamed action; the head is written with the first line. */
class ProgressLines {
  readonly #res: ServerResponse
  #last = 0
  #pending?: Record<string, unknown>
  #timer?: NodeJS.Timeout
  #started = false
  #ended = false

  constructor(res: ServerResponse) {
    this.#res = res
  }

  push(event: Record<string, unknown>): void {
    if (this.#ended) return
    this.#pending = event
    const wait = this.#last + PROGRESS_INTERVAL_MS - Date.now()
    if (wait <= 0) this.#flush()
    else
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined
        this.#flush()
      }, wait)
  }

  #flush(): void {
    if (this.#pending === undefined || this.#ended) return
    if (!this.#started) {
      this.#started = true
      this.#res.writeHead(200, { 'content-type': NDJSON, 'cache-control': 'no-store' })
    }
    this.#res.write(`${jsonText({ progress: this.#pending })}\n`)
    this.#pending = undefined
    this.#last = Date.now()
  }

  /** Writes the pending event and `last` as the final line; false when nothing was streamed yet. */
  finish(last: { result: unknown } | { error: string; code?: string }): boolean {
    clearTimeout(this.#timer)
    this.#flush()
    this.#ended = true
    if (!this.#started) return false
    this.#res.end(`${jsonText(last)}\n`)
    return true
  }
}

/** <dataDir>/admin.json: where a running node's admin endpoint is and its bearer token. */
const AdminInfoSchema = z.object({
  url: z.string().regex(/^http:\/\/\S+$/),
  token: z.string().min(1).max(256),
  pid: z.int().min(1)
})
export type AdminInfo = z.output<typeof AdminInfoSchema>

/**
 * No answer from a node. `data.notRunning` is true when there is certainly none (no admin file,
 * or the connection was refused): only then may a command use the data dir's stores itself.
 */
export class AdminUnavailableError extends OpenLoraError<'ADMIN_UNAVAILABLE'> {}
/** The node answered, refusing the request (the message is the node's). */
export class AdminRefusedError extends OpenLoraError<'ADMIN_REFUSED'> {}

export class AdminServer implements AdminRoutes {
  readonly #routes = new Map<string, AdminHandler>()
  readonly #actions = new Map<string, AdminAction>()
  readonly #texts = new Map<string, () => Promise<{ contentType: string; body: string }>>()
  readonly #log: Logger
  readonly #file: string
  readonly #token = randomBytes(24).toString('hex')
  #server?: Server
  url?: string

  constructor(dataDir: string, logger: Logger) {
    this.#file = join(dataDir, ADMIN_FILE)
    this.#log = logger.child('admin')
  }

  /** Adds GET /<path> answering the handler's JSON. */
  route(path: string, handler: AdminHandler): void {
    this.#routes.set(path.startsWith('/') ? path : `/${path}`, handler)
  }

  /** Adds POST /<path>: a JSON body of at most MAX_ACTION_BODY_BYTES, answered with the handler's JSON. */
  action(path: string, handler: AdminAction): void {
    this.#actions.set(path.startsWith('/') ? path : `/${path}`, handler)
  }

  /** Adds GET /<path> answering text of its own content type (GET /metrics: Prometheus text format). */
  text(path: string, handler: () => Promise<{ contentType: string; body: string }>): void {
    this.#texts.set(path.startsWith('/') ? path : `/${path}`, handler)
  }

  async start(host: string, port: number): Promise<void> {
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://admin')
      const send = (code: number, body: unknown): void => {
        res.writeHead(code, { 'content-type': 'application/json' })
        res.end(jsonText(body))
      }
      if (!this.#authorized(req.headers.authorization)) return send(401, { error: 'bad or missing token' })
      const text = req.method === 'GET' ? this.#texts.get(url.pathname) : undefined
      if (text) {
        text().then(
          (t) => {
            res.writeHead(200, { 'content-type': t.contentType })
            res.end(t.body)
          },
          (err) => {
            this.#log.warn('admin handler failed', { path: url.pathname, err })
            send(500, { error: (err as Error).message })
          }
        )
        return
      }
      const handler = req.method === 'GET' ? this.#routes.get(url.pathname) : undefined
      const action = req.method === 'POST' ? this.#actions.get(url.pathname) : undefined
      if (!handler && !action)
        return send(404, {
          error: `no such endpoint; allowed: ${[
            ...[...this.#routes.keys(), ...this.#texts.keys()].map((p) => `GET ${p}`),
            ...[...this.#actions.keys()].map((p) => `POST ${p}`)
          ].join(', ')}`
        })
      // progress goes to a caller that asked for a stream; until the first line is written the
      // answer can still be a plain JSON one (a refusal of bad input keeps its 400)
      const lines = action && (req.headers.accept ?? '').includes(NDJSON) ? new ProgressLines(res) : undefined
      const ctx: AdminActionContext = { progress: (event) => lines?.push(event) }
      const run = handler
        ? () => handler(url.searchParams)
        : async () => action!(await readJsonBody(req), ctx)
      Promise.resolve()
        .then(run)
        .then(
          (body) => {
            if (!lines?.finish({ result: body })) send(200, body)
          },
          (err) => {
            if (err instanceof OpenLoraError) {
              // a typed refusal (bad input, unknown model, invalid adapter): the caller's to fix
              this.#log.info('admin request refused', {
                path: url.pathname,
                code: err.code,
                message: err.message
              })
              const body = { error: err.message, code: err.code }
              if (!lines?.finish(body)) send(400, body)
              return
            }
            this.#log.warn('admin handler failed', { path: url.pathname, err })
            const body = { error: (err as Error).message }
            if (!lines?.finish(body)) send(500, body)
          }
        )
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => resolve())
    })
    const addr = server.address()
    if (addr == null || typeof addr === 'string') throw new Error('admin server has no TCP address')
    this.#server = server
    this.url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
    const info: AdminInfo = { url: this.url, token: this.#token, pid: process.pid }
    // created exclusively with mode 0600 (never a file someone else prepared), then renamed in
    const tmp = `${this.#file}.${process.pid}.tmp`
    rmSync(tmp, { force: true })
    writeFileSync(tmp, JSON.stringify(info), { mode: 0o600, flag: 'wx' })
    renameSync(tmp, this.#file)
    this.#log.info('admin endpoint listening', { url: this.url })
  }

  /** Constant-time comparison of the bearer token (no timing oracle on its prefix). */
  #authorized(header: string | undefined): boolean {
    const want = Buffer.from(`Bearer ${this.#token}`)
    const got = Buffer.from(header ?? '')
    return got.length === want.length && timingSafeEqual(got, want)
  }

  async stop(): Promise<void> {
    rmSync(this.#file, { force: true })
    const s = this.#server
    this.#server = undefined
    if (!s) return
    s.closeAllConnections()
    await new Promise<void>((resolve) => s.close(() => resolve()))
  }
}

class AdminBodyError extends OpenLoraError<'BAD_ADMIN_REQUEST'> {}

async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength
    if (size > MAX_ACTION_BODY_BYTES)
      throw new AdminBodyError('BAD_ADMIN_REQUEST', `request body over ${MAX_ACTION_BODY_BYTES} bytes`)
    chunks.push(chunk as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new AdminBodyError('BAD_ADMIN_REQUEST', 'request body is not JSON')
  }
}

/** One line of a streamed answer: a progress event, then the result or the refusal. */
const StreamLineSchema = z.union([
  z.strictObject({ progress: z.record(z.string(), z.unknown()) }),
  z.strictObject({ result: z.unknown() }),
  z.strictObject({ error: z.string(), code: z.string().optional() })
])

/** Reads an NDJSON answer line by line, each at most MAX_RESPONSE_BYTES. */
async function readStreamed<T>(
  res: Response,
  path: string,
  onProgress: (event: Record<string, unknown>) => void
): Promise<T> {
  const bad = (why: string) =>
    new AdminUnavailableError('ADMIN_UNAVAILABLE', `admin ${path}: ${why}`, { notRunning: false })
  const decoder = new TextDecoder()
  let buffered = ''
  const chunks = async function* () {
    try {
      yield* res.body ?? []
    } catch (err) {
      // the timeout, or the node gone mid-answer
      throw bad(`the answer stopped: ${(err as Error).message}`)
    }
  }
  for await (const chunk of chunks()) {
    buffered += decoder.decode(chunk as Uint8Array, { stream: true })
    let nl = buffered.indexOf('\n')
    while (nl >= 0) {
      const text = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      nl = buffered.indexOf('\n')
      let line: z.output<typeof StreamLineSchema>
      try {
        line = StreamLineSchema.parse(JSON.parse(text))
      } catch (err) {
        throw bad(
          `a line of the answer is not { progress } | { result } | { error }: ${(err as Error).message}`
        )
      }
      if ('progress' in line) onProgress(line.progress)
      else if ('error' in line) throw new AdminRefusedError('ADMIN_REFUSED', `admin ${path}: ${line.error}`)
      else return line.result as T
    }
    if (buffered.length > MAX_RESPONSE_BYTES) throw bad('an answer line is too large')
  }
  throw bad('the node closed the answer before its result (did it stop?)')
}

/**
 * Asks the node that owns `dataDir`: GET /<path>, or POST with `body` (an action). With
 * `onProgress`, an action's progress events arrive there while it runs (an NDJSON answer). Throws
 * AdminUnavailableError when no node answers, AdminRefusedError when it answers with an error.
 */
export async function adminRequest<T = unknown>(
  dataDir: string,
  path: string,
  timeoutMs = 5_000,
  body?: unknown,
  onProgress?: (event: Record<string, unknown>) => void
): Promise<T> {
  let info: AdminInfo
  try {
    info = AdminInfoSchema.parse(JSON.parse(readFileSync(join(dataDir, ADMIN_FILE), 'utf8')))
  } catch {
    throw new AdminUnavailableError(
      'ADMIN_UNAVAILABLE',
      `no running node found for data dir ${dataDir} (no ${ADMIN_FILE}); start one with \`openlora start --data-dir ${dataDir}\``,
      { notRunning: true }
    )
  }
  let res: Response
  try {
    res = await fetch(`${info.url}/${path.replace(/^\//, '')}`, {
      headers: {
        authorization: `Bearer ${info.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(onProgress === undefined ? {} : { accept: `${NDJSON}, application/json` })
      },
      ...(body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs)
    })
  } catch (err) {
    const refused = err instanceof Error && foreignCode(err.cause) === 'ECONNREFUSED'
    throw new AdminUnavailableError(
      'ADMIN_UNAVAILABLE',
      `the node of data dir ${dataDir} does not answer at ${info.url} (${(err as Error).message}); is it still running?`,
      { notRunning: refused }
    )
  }
  if (onProgress && res.ok && res.headers.get('content-type') === NDJSON)
    return readStreamed<T>(res, path, onProgress)
  const text = await res.text()
  if (text.length > MAX_RESPONSE_BYTES)
    throw new AdminUnavailableError('ADMIN_UNAVAILABLE', 'admin answer too large', { notRunning: false })
  const answer = JSON.parse(text) as T & { error?: string }
  if (!res.ok) throw new AdminRefusedError('ADMIN_REFUSED', `admin ${path}: ${answer.error ?? res.status}`)
  return answer
}
