// Local admin endpoint: JSON over HTTP on 127.0.0.1 (never another interface) with a bearer
// token, both written to <dataDir>/admin.json (mode 0600) so only the node's user can reach it.
// `openlora peers` and the swarm launcher read that file and ask the running node. Services add
// their own read-only routes with `route()` and commands with `action()` (POST with a small JSON
// body, e.g. `openlora adapter add` on a running node).
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { join } from 'node:path'
import { foreignCode, OpenLoraError } from '../common/errors.ts'
import type { Logger } from '../common/log.ts'
import { z } from '../common/schema.ts'
import type { AdminAction, AdminHandler, AdminRoutes } from '../common/service.ts'

export const ADMIN_FILE = 'admin.json'
/** The answer to any admin call is small; a client refuses more so a wrong port cannot flood it. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024
/** An action's request body: a few paths and names. */
export const MAX_ACTION_BODY_BYTES = 64 * 1024

export type { AdminAction, AdminHandler }

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
        res.end(JSON.stringify(body, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)))
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
      const run = handler ? () => handler(url.searchParams) : async () => action!(await readJsonBody(req))
      Promise.resolve()
        .then(run)
        .then(
          (body) => send(200, body),
          (err) => {
            if (err instanceof OpenLoraError) {
              // a typed refusal (bad input, unknown model, invalid adapter): the caller's to fix
              this.#log.info('admin request refused', {
                path: url.pathname,
                code: err.code,
                message: err.message
              })
              return send(400, { error: err.message, code: err.code })
            }
            this.#log.warn('admin handler failed', { path: url.pathname, err })
            send(500, { error: (err as Error).message })
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

/**
 * Asks the node that owns `dataDir`: GET /<path>, or POST with `body` (an action). Throws
 * AdminUnavailableError when no node answers, AdminRefusedError when it answers with an error.
 */
export async function adminRequest<T = unknown>(
  dataDir: string,
  path: string,
  timeoutMs = 5_000,
  body?: unknown
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
        ...(body === undefined ? {} : { 'content-type': 'application/json' })
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
  const text = await res.text()
  if (text.length > MAX_RESPONSE_BYTES)
    throw new AdminUnavailableError('ADMIN_UNAVAILABLE', 'admin answer too large', { notRunning: false })
  const answer = JSON.parse(text) as T & { error?: string }
  if (!res.ok) throw new AdminRefusedError('ADMIN_REFUSED', `admin ${path}: ${answer.error ?? res.status}`)
  return answer
}
