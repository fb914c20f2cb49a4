// Fuzzes the decoders of outside input (scripts/fuzz/targets.ts: one decoder per target; a
// typed refusal is fine, anything else thrown is a finding).
//   npm run fuzz -- [--target NAME[,NAME]] [--runs N | --execs N] [--seed S] [--json]
//                   [--engine jazzer|fast-check] [--parallel N] [--corpus-dir DIR] [--rss-limit-mb MB]
//                   [--verbose | --log-dir DIR]
//                   [--save-seeds] [--coverage]
// --engine jazzer (default): Jazzer.js 4, coverage-guided (libFuzzer), one process per target,
// libFuzzer's -timeout=1 (an input over 1 s is a finding) and -rss_limit_mb (default 2048; the
// process starts at about 0.7 GB); reports executions, libFuzzer's cov/ft counters and corpus
// growth. Seeds: test/fuzz/corpus/NAME/ (read only); the grown corpus goes to a temporary
// directory, or to DIR/NAME with --corpus-dir (kept, so a later run starts from it). libFuzzer's
// own output: --verbose (to stderr) or --log-dir DIR (DIR/NAME.log).
// --engine fast-check: the earlier mutation fuzzer (scripts/fuzz/fast-check-engine.ts); with
// --coverage it runs under Node's own coverage and prints line, branch and function coverage of
// each target's decoder modules.
// Exit code 1 when any target fails; the failing input is printed (fast-check) or its file named.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CORPUS, type FuzzResult, fuzzTarget, TARGET_MODULES } from './fuzz/fast-check-engine.ts'
import { fuzzWithJazzer, type JazzerResult } from './fuzz/jazzer-engine.ts'
import { TARGETS } from './fuzz/targets.ts'

if (import.meta.url === `file://${process.argv[1]}`) {
  // under --coverage the test runner starts this file again with the arguments in FUZZ_ARGS
  const args = process.env.FUZZ_ARGS ? (JSON.parse(process.env.FUZZ_ARGS) as string[]) : process.argv.slice(2)
  if (args.includes('--coverage') && !process.env.FUZZ_ARGS) {
    if (args.includes('--engine') && args[args.indexOf('--engine') + 1] !== 'fast-check') {
      console.error('--coverage runs the fast-check engine under Node coverage; Jazzer reports cov/ft itself')
      process.exit(2)
    }
    const { spawnSync } = await import('node:child_process')
    const i = args.indexOf('--target')
    const wanted = i >= 0 ? (args[i + 1] ?? '').split(',') : Object.keys(TARGET_MODULES)
    const modules = [...new Set(wanted.flatMap((n) => TARGET_MODULES[n] ?? []))]
    const r = spawnSync(
      process.execPath,
      [
        '--expose-gc',
        '--test',
        '--experimental-test-coverage',
        ...modules.map((m) => `--test-coverage-include=${m}`),
        '--test-reporter=spec',
        process.argv[1] as string
      ],
      {
        stdio: 'inherit',
        env: { ...process.env, FUZZ_ARGS: JSON.stringify(args.filter((a) => a !== '--coverage')) }
      }
    )
    process.exit(r.status ?? 1)
  }
  const opt = (k: string) => {
    const i = args.indexOf(k)
    return i >= 0 ? args[i + 1] : undefined
  }
  const names = opt('--target')?.split(',')
  const unknown = names?.filter((n) => !TARGETS.some((t) => t.name === n)) ?? []
  if (unknown.length > 0) {
    console.error(`unknown target ${unknown.join(', ')}; targets: ${TARGETS.map((t) => t.name).join(', ')}`)
    process.exit(2)
  }
  const chosen = TARGETS.filter((t) => !names || names.includes(t.name))
  if (args.includes('--save-seeds')) {
    for (const t of chosen) {
      const dir = join(CORPUS, t.name)
      mkdirSync(dir, { recursive: true })
      const seeds = await t.seeds()
      for (const [i, s] of seeds.entries()) writeFileSync(join(dir, `seed-${i}.bin`), s)
    }
    console.log(`wrote seeds of ${chosen.length} targets under ${CORPUS}`)
    process.exit(0)
  }
  const runs = Number(opt('--execs') ?? opt('--runs') ?? 20_000)
  if (!Number.isInteger(runs) || runs < 1) {
    console.error(`--execs must be a positive integer, got ${opt('--execs') ?? opt('--runs')}`)
    process.exit(2)
  }
  const seed = opt('--seed') === undefined ? undefined : Number(opt('--seed'))
  const engine = opt('--engine') ?? (process.env.FUZZ_ARGS ? 'fast-check' : 'jazzer')
  if (engine !== 'jazzer' && engine !== 'fast-check') {
    console.error(`--engine must be jazzer or fast-check, got ${engine}`)
    process.exit(2)
  }
  const rssLimitMb = Number(opt('--rss-limit-mb') ?? 2048)
  const corpusDir = opt('--corpus-dir')
  const logDir = opt('--log-dir')
  if (logDir) mkdirSync(logDir, { recursive: true })
  const parallel = Number(opt('--parallel') ?? 1)
  if (!Number.isInteger(parallel) || parallel < 1) {
    console.error(`--parallel must be a positive integer, got ${opt('--parallel')}`)
    process.exit(2)
  }
  const json = args.includes('--json')
  const results: (FuzzResult | JazzerResult)[] = []
  if (engine === 'fast-check')
    for (const t of chosen) {
      const r = fuzzTarget(t, runs, seed)
      results.push(r)
      if (!json)
        console.log(
          `${r.failure ? 'FAIL' : 'ok  '} ${t.name.padEnd(18)} ${r.runs} runs  ${r.seconds} s  ${r.execsPerSec}/s  slowest ${r.slowestMs} ms  heap +${r.heapGrowthMiB} MiB${r.failure ? `\n${r.failure}` : ''}`
        )
    }
  else {
    // --parallel N: N target processes at once (each is single-threaded); results keep target order
    const byName = new Map<string, JazzerResult>()
    const queue = chosen.map((t) => t.name)
    const worker = async () => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
        const r = await fuzzWithJazzer(name, {
          runs,
          rssLimitMb,
          verbose: args.includes('--verbose'),
          ...(seed !== undefined ? { seed } : {}),
          ...(corpusDir ? { corpusDir } : {}),
          ...(logDir ? { logFile: join(logDir, `${name}.log`) } : {})
        })
        byName.set(name, r)
        if (!json)
          console.log(
            `${r.failure ? 'FAIL' : 'ok  '} ${name.padEnd(18)} ${r.runs} runs  ${r.seconds} s (+${r.startupSeconds} s start)  ${r.execsPerSec}/s  cov ${r.cov} ft ${r.ft}  corpus ${r.corpus.initial} -> ${r.corpus.final} (${r.corpus.seeds} seeds, ${r.corpus.bytes} B)  peak RSS ${r.peakRssMb} MB${r.failure ? `\n${r.failure}${r.artifact ? `\nfailing input: ${r.artifact}` : ''}` : ''}`
          )
      }
    }
    await Promise.all(Array.from({ length: Math.min(parallel, chosen.length) }, worker))
    for (const t of chosen) results.push(byName.get(t.name) as JazzerResult)
  }
  if (args.includes('--json')) console.log(JSON.stringify(results, null, 1))
  process.exit(results.some((r) => r.failure) ? 1 : 0)
}
