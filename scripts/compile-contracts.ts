// Compiles src/chain/contracts/*.sol with solc-js (the npm `solc`, pinned in package-lock) into
// src/chain/artifacts: one JSON per contract (ABI, bytecode) and index.ts with the ABIs `as const`
// so viem infers function and event types. The artifacts are committed; a unit test
// (test/unit/chain-artifacts.test.ts) recompiles and fails when they no longer match the sources.
//
//   node scripts/compile-contracts.ts [--check]
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { compileContracts, renderArtifacts } from '../src/chain/compile.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const check = process.argv.includes('--check')
const compiled = compileContracts(root)
const files = renderArtifacts(compiled)
let stale = 0
for (const [rel, text] of Object.entries(files)) {
  const path = `${root}src/chain/artifacts/${rel}`
  let old = ''
  try {
    old = readFileSync(path, 'utf8')
  } catch {}
  if (old === text) continue
  stale++
  if (check) console.error(`stale: src/chain/artifacts/${rel}`)
  else writeFileSync(path, text)
}
if (check && stale > 0) {
  console.error(`${stale} artifact(s) differ from the sources; run: node scripts/compile-contracts.ts`)
  process.exit(1)
}
console.log(
  `${Object.keys(compiled.contracts).length} contracts, ${stale} artifact file(s) ${check ? 'stale' : 'written'}`
)
