// The default engine of `npm run fuzz`: Jazzer.js 4 (libFuzzer, coverage-guided). Each target
// runs in its own process (jazzer-run.ts) so instrumentation, libFuzzer's limits and a crash stay
// with that target; this side starts it with the glibc shim (jazzer-compat.ts) preloaded and reads
// libFuzzer's status lines and final statistics from its stderr.
import { spawn } from 'node:child_process'
import {
  closeSync,
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  rmSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CORPUS, TARGET_MODULES } from './fast-check-engine.ts'
import { ensureJazzerCompat } from './jazzer-compat.ts'
import type { JazzerRunArgs } from './jazzer-run.ts'

const ROOT = join(import.meta.dirname, '..', '..')

/**
 * The libraries that parse the bytes for a target's decoder: cborg decodes every CBOR frame, zod
 * checks the shape of every schema-checked message, @huggingface/jinja parses chat templates,
 * @huggingface/tokenizers builds the tokenizer from tokenizer.json.
 * JSON.parse is native, so it gives no feedback. Instrumenting zod costs about 3 s of start-up.
 */
const CBOR = ['cborg']
const ZOD = ['zod']
const LIBRARIES: Record<string, string[]> = {
  cbor: CBOR,
  'infer-request': [...CBOR, ...ZOD],
  'infer-response': [...CBOR, ...ZOD],
  advert: [...CBOR, ...ZOD],
  'datanet-request': [...CBOR, ...ZOD],
  receipt: ZOD,
  voucher: ZOD,
  'attribution-proof': ZOD,
  config: ZOD,
  'gateway-chat': ZOD,
  'gateway-completion': ZOD,
  'chat-template': ['@huggingface/jinja'],
  'tokenizer-json': ['@huggingface/tokenizers']
}

/**
 * What Jazzer instruments for one target: its decoder's modules (TARGET_MODULES; a glob is its
 * directory), src/common/schema.ts where zod checks it, and the libraries above. Instrumenting all
 * of src/ for every target would spend ~6 s of start-up per target on modules a decode never runs.
 */
export function instrumented(target: string): string[] {
  const libs = LIBRARIES[target] ?? []
  const modules = [
    ...(TARGET_MODULES[target] ?? []),
    ...(libs.includes('zod') ? ['src/common/schema.ts'] : [])
  ]
  return [
    ...new Set(modules.map((m) => join(ROOT, m.endsWith('*.ts') ? m.slice(0, -'*.ts'.length) : m))),
    ...libs.map((l) => join(ROOT, 'node_modules', l) + '/')
  ]
}

export interface JazzerOptions {
  runs: number
  seed?: number
  /** keep the grown corpus in DIR/NAME (default: a temporary directory, removed afterwards) */
  corpusDir?: string
  /** libFuzzer's -rss_limit_mb: the process's resident memory, start-up (~0.7 GB) included */
  rssLimitMb: number
  /** pass libFuzzer's output through to stderr */
  verbose?: boolean
  /** write libFuzzer's output (less the per-module counter lists) to this file */
  logFile?: string
  /** another module exporting `fuzz(data)` (a test plants a bug this way); instrumented too */
  entry?: string
}

export interface JazzerResult {
  target: string
  engine: 'jazzer'
  /** libFuzzer's -seed: `--seed` repeats the run's mutations */
  seed?: number
  runs: number
  /** fuzzing time, from libFuzzer's INITED line to DONE (start-up and instrumentation excluded) */
  seconds: number
  startupSeconds: number
  execsPerSec: number
  /** libFuzzer's coverage counters: edges (cov) and features (ft, edges with hit-count buckets) */
  cov: number
  ft: number
  corpus: { seeds: number; initial: number; final: number; bytes: number }
  newUnits: number
  peakRssMb: number
  failure?: string
  /** the input that failed, as libFuzzer wrote it */
  artifact?: string
}

const STATUS =
  /^#(\d+)\s+(INITED|NEW|REDUCE|pulse|DONE|RELOAD)\s+cov: (\d+) ft: (\d+) corp: (\d+)\/(\d+)(b|Kb|Mb)/
const UNIT = { b: 1, Kb: 1024, Mb: 1024 * 1024 } as const

export async function fuzzWithJazzer(target: string, opts: JazzerOptions): Promise<JazzerResult> {
  const compat = ensureJazzerCompat()
  const seedDir = join(CORPUS, target)
  const seeds = readdirSync(seedDir).length
  const temp = mkdtempSync(join(tmpdir(), `openlora-fuzz-${target}-`))
  const work = opts.corpusDir ? join(opts.corpusDir, target) : join(temp, 'corpus')
  mkdirSync(work, { recursive: true })
  const args: JazzerRunArgs = {
    target,
    ...(opts.entry ? { entry: opts.entry } : {}),
    includes: [...instrumented(target), ...(opts.entry ? [opts.entry] : [])],
    fuzzerOptions: [
      work, // new inputs go to the first directory; the committed seeds stay as they are
      seedDir,
      `-runs=${opts.runs}`,
      `-rss_limit_mb=${opts.rssLimitMb}`,
      `-artifact_prefix=${temp}/`,
      '-print_final_stats=1',
      ...(opts.seed !== undefined ? [`-seed=${opts.seed}`] : [])
    ]
  }
  const preload = [compat.preload, process.env.LD_PRELOAD].filter(Boolean).join(':')
  const started = performance.now()
  // libFuzzer writes to fd 2 from C. A Node child's stdio pipe is non-blocking (O_NONBLOCK in
  // /proc/PID/fdinfo/2), so when the pipe is full write() fails with EAGAIN and libFuzzer's line is
  // lost: the per-module counter lists at start-up and the dictionary at exit filled it, and the
  // INITED line or the final statistics went missing (a 10^6 run's output ended mid-word). A regular file never refuses a write: the child writes there
  // and this side reads it as it grows.
  const outPath = join(temp, 'libfuzzer.out')
  const out = openSync(outPath, 'w+')
  const child = spawn(process.execPath, [join(import.meta.dirname, 'jazzer-run.ts'), JSON.stringify(args)], {
    cwd: ROOT,
    stdio: ['ignore', out, out],
    env: { ...process.env, ...(preload ? { LD_PRELOAD: preload } : {}) }
  })
  const tail: string[] = []
  const stats = new Map<string, number>()
  let inited: number | undefined
  let done: number | undefined
  let last: RegExpMatchArray | undefined
  let initial = 0
  let newLines = 0
  let peakRss = 0
  let artifact: string | undefined
  let seed: number | undefined
  const log = opts.logFile ? createWriteStream(opts.logFile) : undefined
  const onLine = (line: string) => {
    if (line.startsWith('INFO: Loaded ')) return // one counter range per module: thousands of characters
    if (opts.verbose) process.stderr.write(`${line}\n`)
    log?.write(`${line}\n`)
    tail.push(line)
    if (tail.length > 60) tail.shift()
    const m = STATUS.exec(line)
    if (m) {
      // the first status line is INITED; should it be missed, the first one seen stands for it
      if (inited === undefined) {
        inited = performance.now()
        initial = Number(m[5])
      }
      last = m
      if (m[2] === 'NEW') newLines++
      if (m[2] === 'DONE') done = performance.now()
      peakRss = Math.max(peakRss, Number(/ rss: (\d+)Mb/.exec(line)?.[1] ?? 0))
    }
    const s = /^stat::(\w+):\s+(\d+)/.exec(line)
    if (s) stats.set(s[1] as string, Number(s[2]))
    const seedLine = /^INFO: Seed: (\d+)/.exec(line)
    if (seedLine) seed = Number(seedLine[1])
    const a = /Test unit written to (\S+)/.exec(line)
    if (a) artifact = a[1]
  }
  let pos = 0
  let pending = ''
  const chunk = Buffer.alloc(1 << 16)
  const drain = () => {
    for (
      let n = readSync(out, chunk, 0, chunk.length, pos);
      n > 0;
      n = readSync(out, chunk, 0, chunk.length, pos)
    ) {
      pos += n
      const parts = (pending + chunk.toString('latin1', 0, n)).split('\n')
      pending = parts.pop() ?? ''
      parts.forEach(onLine)
    }
  }
  // 100 ms: the INITED and DONE times that bound the fuzzing seconds are this close
  const poll = setInterval(drain, 100)
  const code = await new Promise<number>((resolve) =>
    child.on('close', (c, sig) => resolve(c ?? (sig ? 128 : 1)))
  )
  clearInterval(poll)
  drain()
  if (pending) onLine(pending)
  closeSync(out)
  log?.end()
  const end = done ?? performance.now()
  const runs = stats.get('number_of_executed_units') ?? Number(last?.[1] ?? 0)
  const seconds = inited === undefined ? 0 : (end - inited) / 1000
  const result: JazzerResult = {
    target,
    engine: 'jazzer',
    ...(seed !== undefined ? { seed } : {}),
    runs,
    seconds: Number(seconds.toFixed(1)),
    startupSeconds: Number((((inited ?? end) - started) / 1000).toFixed(1)),
    execsPerSec: seconds > 0 ? Math.round(runs / seconds) : 0,
    cov: Number(last?.[3] ?? 0),
    ft: Number(last?.[4] ?? 0),
    corpus: {
      seeds,
      initial,
      final: Number(last?.[5] ?? 0),
      bytes: Number(last?.[6] ?? 0) * UNIT[(last?.[7] ?? 'b') as keyof typeof UNIT]
    },
    // -print_final_stats is printed at exit and at times does not arrive; the status lines always do
    newUnits: stats.get('new_units_added') ?? newLines,
    peakRssMb: Math.max(stats.get('peak_rss_mb') ?? 0, peakRss)
  }
  if (code !== 0 || done === undefined) {
    result.failure = `jazzer exited with ${code}${done === undefined ? ' before finishing' : ''}:\n${tail.join('\n')}`
    if (artifact) {
      // keep the failing input where the report says it is; the rest of the temp dir goes
      result.artifact = artifact
      rmSync(join(temp, 'corpus'), { recursive: true, force: true })
      return result
    }
  }
  rmSync(temp, { recursive: true, force: true })
  return result
}
