// CI check that the committed contract artifacts are what the committed sources compile to.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { test } from 'uvu'
import { compileContracts, renderArtifacts } from '../../src/chain/compile.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
// solc-js takes several seconds per compile on these machines: compile once for both tests
let cached: ReturnType<typeof compileContracts> | undefined
const compiled = () => (cached ??= compileContracts(root))

test('src/chain/artifacts match src/chain/contracts (run: node scripts/compile-contracts.ts)', () => {
  const files = renderArtifacts(compiled())
  assert.ok(Object.keys(files).length >= 5)
  for (const [rel, text] of Object.entries(files)) {
    const committed = readFileSync(`${root}src/chain/artifacts/${rel}`, 'utf8')
    assert.ok(
      committed === text,
      `src/chain/artifacts/${rel} is stale; run node scripts/compile-contracts.ts`
    )
  }
})

test('every contract has bytecode and the Settlement ABI has the claim entry point', () => {
  const { contracts } = compiled()
  for (const [name, c] of Object.entries(contracts)) assert.ok(c.bytecode.length > 100, `${name} bytecode`)
  const claim = contracts.Settlement.abi.find((x) => (x as { name?: string }).name === 'claim')
  assert.ok(claim, 'Settlement.claim in ABI')
})

test.run()
