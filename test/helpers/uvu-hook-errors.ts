// Preloaded by scripts/run-tests.ts (node --import): uvu 0.5 runs a suite's before/after hooks
// inside a try whose `finally` returns, so an error thrown by a hook vanishes and the file only
// reports "(0 / N)". This wraps the hooks of the default suite so that the error is printed first
// (and still thrown, so the suite fails as before). CI's stop 24 failed on such a silent hook.
import { test } from 'uvu'

type Hook = Parameters<typeof test.before>[0]

function loud(kind: string, register: (fn: Hook) => void): (fn: Hook) => void {
  return (fn) =>
    register(async (ctx) => {
      try {
        await fn(ctx)
      } catch (err) {
        console.error(`[uvu] the ${kind} hook threw:`, err)
        throw err
      }
    })
}

for (const kind of ['before', 'after'] as const) {
  const original = test[kind]
  const wrapped = Object.assign(loud(kind, original), {
    each: loud(`${kind}.each`, original.each)
  })
  test[kind] = wrapped as typeof original
}
