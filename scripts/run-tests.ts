// Runs every test file of the chosen tiers, each in its own process (native resources such as
// ONNX sessions, LevelDB handles and libp2p sockets never leak from one file into the next), and
// prints the closing line CI reads: `N passed, N failed`.
//
//   node scripts/run-tests.ts [unit|e2e|attacks|sim|browser|nat ...] [--filter SUBSTRING]
// (attacks: test/attacks, one end-to-end payment attack per file, docs/THREATS.md; browser:
// test/browser, the dashboard in Debian's chromium, screenshots in test-output/)
// `nat` (npm run test:nat) builds network namespaces and NATs: root only, so never a default tier.
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { pathToFileURL } from 'node:url'

const TIERS = ['unit', 'e2e', 'attacks', 'sim', 'browser', 'nat'] as const
const DEFAULT_TIERS = ['unit', 'e2e', 'attacks', 'sim', 'browser']
// unit files are CPU-light and short; e2e and sim start real hosts and chains, so they run one
// at a time on these 2-core machines to keep timing-sensitive parts (gossip heartbeats) honest.
const CONCURRENCY: Record<string, number> = { unit: 2, e2e: 1, attacks: 1, sim: 1, browser: 1, nat: 1 }
const FILE_TIMEOUT_MS: Record<string, number> = {
  unit: 180_000,
  e2e: 300_000,
  attacks: 300_000,
  sim: 420_000,
  browser: 420_000,
  nat: 600_000
}

const args = process.argv.slice(2)
const filterAt = args.indexOf('--filter')
const filter = filterAt >= 0 ? args[filterAt + 1] : undefined
const tiers = args.filter((a, i) => !a.startsWith('--') && (filterAt < 0 || i !== filterAt + 1))
const chosen = tiers.length > 0 ? tiers : DEFAULT_TIERS
for (const t of chosen) {
  if (!(TIERS as readonly string[]).includes(t)) {
    console.error(`unknown test tier "${t}"; allowed: ${TIERS.join(', ')}`)
    process.exit(2)
  }
}

function findTests(dir: string): string[] {
  let out: string[] = []
  let entries: string[] = []
  try {
    entries = readdirSync(dir)
  } catch {
    return out
  }
  for (const name of entries.sort()) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out = out.concat(findTests(p))
    else if (name.endsWith('.test.ts')) out.push(p)
  }
  return out
}

interface FileResult {
  file: string
  passed: number
  failed: number
  ms: number
  output: string
}

// uvu swallows errors thrown by before/after hooks; this preload prints them (see the file).
const HOOK_ERRORS = pathToFileURL(
  join(import.meta.dirname, '..', 'test', 'helpers', 'uvu-hook-errors.ts')
).href

function runFile(file: string, tier: string): Promise<FileResult> {
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', HOOK_ERRORS, file], {
      env: {
        ...process.env,
        OPENLORA_LOG_LEVEL: process.env.OPENLORA_LOG_LEVEL ?? 'silent',
        FORCE_COLOR: '0'
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true
    })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const timer = setTimeout(() => {
      output += `\n[run-tests] ${file} timed out after ${FILE_TIMEOUT_MS[tier]} ms; killed`
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {}
    }, FILE_TIMEOUT_MS[tier])
    child.on('close', (code) => {
      clearTimeout(timer)
      // Kill anything the file left behind (anvil, swarm children) with its process group.
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {}
      const total = Number(/Total:\s+(\d+)/.exec(output)?.[1] ?? 0)
      const passedCount = Number(/Passed:\s+(\d+)/.exec(output)?.[1] ?? 0)
      let failed = total - passedCount
      // A file that crashed or exited non-zero without failing a test still counts as a failure.
      if (code !== 0 && failed === 0) failed = 1
      if (total === 0 && code === 0) failed = 1
      resolve({ file, passed: passedCount, failed, ms: Date.now() - started, output })
    })
  })
}

async function runTier(tier: string): Promise<FileResult[]> {
  let files = findTests(join('test', tier))
  if (filter) files = files.filter((f) => f.includes(filter))
  const results: FileResult[] = []
  const queue = [...files]
  const workers = Array.from({ length: CONCURRENCY[tier] }, async () => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      const r = await runFile(f, tier)
      const mark = r.failed > 0 ? 'FAIL' : 'ok  '
      console.log(`${mark} ${relative('.', r.file)}  (${r.passed} passed, ${r.failed} failed, ${r.ms} ms)`)
      if (r.failed > 0) console.log(r.output.replace(/^/gm, '    | '))
      results.push(r)
    }
  })
  await Promise.all(workers)
  return results
}

let passed = 0
let failed = 0
for (const tier of chosen) {
  console.log(`== ${tier}`)
  for (const r of await runTier(tier)) {
    passed += r.passed
    failed += r.failed
  }
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed > 0 ? 1 : 0)
