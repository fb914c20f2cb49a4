// Structured, levelled logging on pino: one JSON line per event (what log shippers, `jq` and the
// swarm's own log readers parse), pretty through pino-pretty when stderr is a terminal. Library
// code takes a Logger; ids (peer, cid, job) go in fields, never into the message text; each
// component logs through a child (`component` field). Secrets never reach a line: named secret
// fields are censored and URLs (RPC URLs carry API keys) are cut to scheme://host, in fields,
// messages and errors alike (docs/THREATS.md L4).
import { type Logger as PinoLogger, pino } from 'pino'
import pretty from 'pino-pretty'
import { redactUrl, redactUrls, SECRET_FIELDS, URL_FIELDS } from './redact.ts'

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'silent']

export type LogFields = Record<string, unknown>

export interface Logger {
  trace(msg: string, fields?: LogFields): void
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  child(component: string): Logger
  readonly level: LogLevel
}

export interface LoggerOptions {
  level?: LogLevel
  /** JSON lines (default when stderr is not a TTY) or pino-pretty's human form */
  json?: boolean
  /** where lines go (one JSON line per call, no newline); stderr by default so stdout stays for command output */
  write?: (line: string) => void
  /** fields added to every line (e.g. the node's short peer id in a swarm) */
  base?: LogFields
}

function envLevel(): LogLevel {
  const v = process.env.OPENLORA_LOG_LEVEL
  return v != null && (LOG_LEVELS as readonly string[]).includes(v) ? (v as LogLevel) : 'info'
}

const SECRETS = new Set<string>(SECRET_FIELDS)
const URLS = new Set<string>(URL_FIELDS)
const MAX_DEPTH = 6

/** Makes a field value safe and JSON-friendly: secrets censored, URLs cut, bigints and bytes as text. */
function clean(v: unknown, key: string, depth: number): unknown {
  if (SECRETS.has(key) && v != null) return '[redacted]'
  if (typeof v === 'string') return URLS.has(key) ? redactUrl(v) : redactUrls(v)
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof Uint8Array) return `0x${Buffer.from(v).toString('hex')}`
  if (v instanceof Error) {
    const code = (v as { code?: unknown }).code
    return { name: v.name, message: redactUrls(v.message), ...(code === undefined ? {} : { code }) }
  }
  if (v === null || typeof v !== 'object' || depth >= MAX_DEPTH) return v
  if (Array.isArray(v)) return v.map((x) => clean(x, key, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) out[k] = clean(x, k, depth + 1)
  return out
}

function destination(opts: LoggerOptions, json: boolean) {
  if (opts.write) {
    const write = opts.write
    return { write: (line: string) => write(line.endsWith('\n') ? line.slice(0, -1) : line) }
  }
  // synchronous, so the last lines before an exit or a crash are not lost
  if (!json) return pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname' })
  return pino.destination({ fd: 2, sync: true })
}

function wrap(root: PinoLogger, component: string, level: LogLevel): Logger {
  // each component is its own child of the root, so a line carries one `component` field
  const p = root.child({ component })
  const at =
    (lvl: Exclude<LogLevel, 'silent'>) =>
    (msg: string, fields?: LogFields): void => {
      if (!p.isLevelEnabled(lvl)) return
      if (fields === undefined) p[lvl](redactUrls(msg))
      else p[lvl](clean(fields, '', 0) as object, redactUrls(msg))
    }
  return {
    level,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (sub) => wrap(root, `${component}:${sub}`, level)
  }
}

export function createLogger(component: string, opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? envLevel()
  const json = opts.json ?? !process.stderr.isTTY
  const p = pino(
    {
      level,
      base: opts.base ? (clean(opts.base, '', 0) as object) : null,
      // fields are cleaned above (clean()); pino's own Error serializer would undo that
      serializers: { err: (e: unknown) => e },
      timestamp: pino.stdTimeFunctions.isoTime,
      // level names, not numbers: the lines are read by people and by the swarm's log readers
      formatters: { level: (label) => ({ level: label }) }
    },
    destination(opts, json)
  )
  return wrap(p, component, level)
}

/** A logger that drops everything; for unit tests and library defaults. */
export const silentLogger: Logger = createLogger('silent', { level: 'silent' })
