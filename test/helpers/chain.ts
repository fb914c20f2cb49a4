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

/**
 * Fails unless the claim went through and refused exactly these entries (Settlement settles the
 * valid entries and reports each refused one with its index and reason).
 */
export async function refusesEntries(
  p: Promise<{ rejected: { index: number; reason: string }[] }>,
  reasons: (string | undefined)[]
): Promise<void> {
  const { rejected } = await p
  const want = reasons.flatMap((reason, index) => (reason ? [{ index, reason }] : []))
  assert.deepEqual(rejected, want)
}
