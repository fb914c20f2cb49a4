// Progress of long CLI work (adapter fetch, datanet copy, GGUF export, model import and
// quantization, training). On a terminal (stdout and stderr both TTYs) a cli-progress bar on
// stderr: bytes with speed and ETA, tensors, or steps with loss and tokens/s. Otherwise quiet and
// line-oriented: with --json nothing (the command's own JSON is the output), and when not on a
// terminal a plain line on stderr at the start, at each tenth of the way and at the end, so logs
// stay short and greppable. cli-progress over a hand-made bar: it handles terminal width, redraw
// throttling, ETA smoothing and leaves the line clean on stop.
import { SingleBar } from 'cli-progress'
import { z } from '../../common/schema.ts'

export type ProgressUnit = 'bytes' | 'tensors' | 'steps'

export interface ProgressInfo {
  /** training: the step's loss */
  loss?: number
  /** training: tokens per second of the step */
  tokensPerSecond?: number
}

export interface ProgressTask {
  /** how far the work is (bytes, tensors or steps done); a new total when it became known */
  update(value: number, info?: ProgressInfo & { total?: number }): void
  /** the work ended: with `completed` (default) the bar shows 100 %; either way the terminal is
   * given back. Idempotent, so a `finally` may call done(false) after a successful done(). */
  done(completed?: boolean): void
}

export type ProgressMode = 'bar' | 'lines' | 'quiet'

export interface ProgressOptions {
  /** --json: quiet */
  json?: boolean
  /** where the bar or lines go (default process.stderr) */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }
  /** override the TTY check (tests) */
  mode?: ProgressMode
}

/** bar on a terminal, quiet with --json, lines otherwise */
export function progressMode(opts: ProgressOptions = {}): ProgressMode {
  if (opts.mode) return opts.mode
  if (opts.json) return 'quiet'
  const stream = opts.stream ?? process.stderr
  return process.stdout.isTTY === true && stream.isTTY === true ? 'bar' : 'lines'
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`
}

const FORMATS: Record<ProgressUnit, string> = {
  bytes: '{label} [{bar}] {percentage}% | {done} / {size} | {speed}/s | ETA {eta_formatted}',
  tensors: '{label} [{bar}] {value}/{total} tensors | ETA {eta_formatted}',
  steps: '{label} [{bar}] step {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_formatted}'
}

function describe(unit: ProgressUnit, value: number, total: number, info: ProgressInfo): string {
  if (unit === 'bytes') return `${formatBytes(value)} / ${formatBytes(total)}`
  if (unit === 'tensors') return `${value}/${total} tensors`
  const extra = [
    info.loss === undefined ? '' : ` loss ${info.loss.toFixed(4)}`,
    info.tokensPerSecond === undefined ? '' : ` ${info.tokensPerSecond.toFixed(0)} tok/s`
  ].join('')
  return `step ${value}/${total}${extra}`
}

/** Starts showing the progress of one piece of work of `total` units. */
export function startProgress(
  label: string,
  total: number,
  unit: ProgressUnit,
  opts: ProgressOptions = {}
): ProgressTask {
  const mode = progressMode(opts)
  const stream = opts.stream ?? process.stderr
  if (mode === 'quiet') return { update() {}, done() {} }
  if (mode === 'lines') {
    let shownTenth = -1
    let last = { value: 0, total, info: {} as ProgressInfo }
    const line = (v: number, t: number, info: ProgressInfo) => {
      // a total not known yet (an export before its header is laid out): just say it started
      if (t <= 0) stream.write(`${label}: started\n`)
      else stream.write(`${label}: ${describe(unit, v, t, info)} (${Math.floor((100 * v) / t)}%)\n`)
    }
    line(0, total, {})
    shownTenth = 0
    let finished = false
    return {
      update(value, info = {}) {
        last = { value, total: info.total ?? last.total, info }
        const tenth = last.total > 0 ? Math.floor((10 * value) / last.total) : 0
        // one line per tenth of the way (the last one waits for done())
        if (tenth > shownTenth && tenth < 10) {
          shownTenth = tenth
          line(value, last.total, info)
        }
      },
      done(completed = true) {
        if (finished) return
        finished = true
        if (completed) line(last.total, last.total, last.info)
        else stream.write(`${label}: stopped at ${describe(unit, last.value, last.total, last.info)}\n`)
      }
    }
  }
  const started = performance.now()
  const bar = new SingleBar(
    {
      format: FORMATS[unit],
      stream: stream as NodeJS.WritableStream,
      barsize: 24,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 20,
      // cli-progress writes only when the value moved and at most this often
      fps: 10
    },
    { format: FORMATS[unit], barCompleteChar: '#', barIncompleteChar: '.' }
  )
  const payload = (value: number, t: number, info: ProgressInfo) => ({
    label,
    done: formatBytes(value),
    size: formatBytes(t),
    speed: formatBytes(Math.round(value / Math.max(0.001, (performance.now() - started) / 1000))),
    loss: info.loss === undefined ? '-' : info.loss.toFixed(4),
    tps: info.tokensPerSecond === undefined ? '-' : info.tokensPerSecond.toFixed(0)
  })
  let t = total
  bar.start(total, 0, payload(0, total, {}))
  let finished = false
  // a command that fails mid-way exits without done(): give the terminal (cursor, line) back
  const onExit = (): void => {
    if (!finished) bar.stop()
  }
  process.once('exit', onExit)
  // ^C during a long fetch is the usual way out: put the cursor back first; when nothing else
  // listens for SIGINT, keep its default meaning (exit, status 130)
  const onSigint = (): void => {
    onExit()
    finished = true
    if (process.listenerCount('SIGINT') === 0) process.exit(130)
  }
  process.once('SIGINT', onSigint)
  return {
    update(value, info = {}) {
      if (info.total !== undefined && info.total !== t) {
        t = info.total
        bar.setTotal(t)
      }
      bar.update(value, payload(value, t, info))
    },
    done(completed = true) {
      if (finished) return
      finished = true
      process.removeListener('exit', onExit)
      process.removeListener('SIGINT', onSigint)
      if (completed) bar.update(t)
      bar.stop()
    }
  }
}

/** A byte-progress event of a node's fetch (adapter by CID, datanet copy), as the node streams it. */
const ByteProgressSchema = z.looseObject({
  peer: z.string().max(256),
  received: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  total: z.int().min(0).max(Number.MAX_SAFE_INTEGER)
})

/**
 * Shows the progress of a fetch a running node does for this command (the admin endpoint streams
 * `{ peer, received, total }` events): a bar with bytes, rate and ETA on a terminal, lines off
 * one, and with --json one `{"event":"progress",…}` line per event on stdout (the command prints
 * its `{"event":"done",…}` line last), as `openlora train --json` does. Bytes start again from 0
 * when the node moves on to another peer.
 */
export async function withFetchProgress<T>(
  label: string,
  opts: ProgressOptions,
  call: (onProgress: (event: Record<string, unknown>) => void) => Promise<T>
): Promise<T> {
  // drawn from the first event with bytes to move: nothing to fetch (already here), no bar
  let bar: ProgressTask | undefined
  let completed = false
  try {
    const out = await call((event) => {
      const e = ByteProgressSchema.safeParse(event)
      if (!e.success) return // a node of another version: no bar rather than a failed command
      if (opts.json) console.log(JSON.stringify({ event: 'progress', ...e.data }))
      if (e.data.total === 0) return
      bar ??= startProgress(label, e.data.total, 'bytes', opts)
      bar.update(e.data.received, { total: e.data.total })
    })
    completed = true
    return out
  } finally {
    bar?.done(completed)
  }
}
