// Structured, levelled logging: one line per event. JSON lines when stderr is not a TTY (so a
// swarm's or CI's logs can be parsed), a short human form on a terminal. Library code takes a
// Logger; ids (peer, cid, job) go in fields, never into the message text.
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'silent']
const RANK: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, silent: 100 }

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
  json?: boolean
  /** where lines go; stderr by default so stdout stays for command output */
  write?: (line: string) => void
  /** fields added to every line (e.g. the node's short peer id in a swarm) */
  base?: LogFields
}

function envLevel(): LogLevel {
  const v = process.env.OPENLORA_LOG_LEVEL
  return v != null && (LOG_LEVELS as readonly string[]).includes(v) ? (v as LogLevel) : 'info'
}

function replacer(_k: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof Error) return { name: v.name, message: v.message, code: (v as { code?: unknown }).code }
  if (v instanceof Uint8Array) return `0x${Buffer.from(v).toString('hex')}`
  return v
}

export function createLogger(component: string, opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? envLevel()
  const json = opts.json ?? !process.stderr.isTTY
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'))
  const base = opts.base ?? {}
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[lvl] < RANK[level]) return
    if (json) {
      write(
        JSON.stringify(
          { t: new Date().toISOString(), level: lvl, c: component, msg, ...base, ...fields },
          replacer
        )
      )
    } else {
      const extra = { ...base, ...fields }
      const tail = Object.keys(extra).length > 0 ? ' ' + JSON.stringify(extra, replacer) : ''
      write(`${new Date().toISOString().slice(11, 23)} ${lvl.padEnd(5)} ${component}: ${msg}${tail}`)
    }
  }
  return {
    level,
    trace: (m, f) => emit('trace', m, f),
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (c) => createLogger(`${component}:${c}`, { level, json, write, base })
  }
}

/** A logger that drops everything; for unit tests and library defaults. */
export const silentLogger: Logger = createLogger('silent', { level: 'silent' })
