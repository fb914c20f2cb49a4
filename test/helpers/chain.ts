// Assertions shared by the chain tests.
import assert from 'node:assert/strict'
import { ChainCallError } from '../../src/chain/errors.ts'

/** Fails unless `p` rejects with a ChainCallError whose decoded custom error is `name`. */
export async function reverts(p: Promise<unknown>, name: string): Promise<void> {
  try {
    await p
  } catch (err) {
    assert.ok(err instanceof ChainCallError, `expected ChainCallError, got ${(err as Error).name}`)
    assert.equal(err.revert, name, err.message)
    return
  }
  assert.fail(`expected revert ${name}`)
}
