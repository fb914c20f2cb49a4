// What the GGUF test files share: temp dirs removed after the file's tests, a tolerance check
// for dequantized values, and a deterministic non-trivial sequence of weights.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'

const dirs: string[] = []
// registered on import, on the importing file's default uvu suite
test.after(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

/** A fresh temp dir, removed once the importing test file's tests have run. */
export async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'gguf-test-'))
  dirs.push(d)
  return d
}

export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what = ''): void {
  assert.is(got.length, want.length, what)
  for (let i = 0; i < got.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol))
      assert.unreachable(`${what}[${i}]: ${got[i]} vs ${want[i]} (tol ${tol})`)
  }
}

export function seq(n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + 1) * scale)
}
