// The Jazzer.js fuzz process of one target, started by scripts/fuzz.ts (which preloads the glibc
// shim of jazzer-compat.ts and reads libFuzzer's statistics from this process's stderr):
//   node jazzer-run.ts '<JSON JazzerRunArgs>'
// Exit codes are Jazzer's: 0 no finding, 77 a finding (crash, timeout, memory), else an error.
import { createRequire, register } from 'node:module'
import { join } from 'node:path'

export interface JazzerRunArgs {
  target: string
  /** the module whose `fuzz(data)` Jazzer calls (default jazzer-entry.ts: the target's decoder) */
  entry?: string
  /** libFuzzer's arguments: corpus directories first, then -flags */
  fuzzerOptions: string[]
  /** substrings of the module paths Jazzer instruments for coverage */
  includes: string[]
}

const args = JSON.parse(process.argv[2] ?? '{}') as JazzerRunArgs
process.env.OPENLORA_FUZZ_TARGET = args.target
// before Jazzer registers its own hook, so ours runs after it on the way back (see the hook)
register('./ts-to-js-hook.ts', import.meta.url)

const require = createRequire(import.meta.url)
const jazzer = require('@jazzer.js/core') as typeof import('@jazzer.js/core')
const options = new jazzer.OptionsManager(jazzer.OptionSource.DefaultCLIOptions).merge(
  {
    fuzzTarget: args.entry ?? join(import.meta.dirname, 'jazzer-entry.ts'),
    fuzzEntryPoint: 'fuzz',
    includes: args.includes,
    excludes: [],
    // the decoders are synchronous: the fuzz loop need not turn the event loop per input
    sync: true,
    // libFuzzer's -timeout=1: an input that takes over 1 s is a finding
    timeout: 1000,
    fuzzerOptions: args.fuzzerOptions
  },
  jazzer.OptionSource.CommandLineArguments
)
const r = await jazzer.startFuzzing(options)
process.exit(r.returnCode)
