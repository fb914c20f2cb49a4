// Polling for a condition that real nodes reach asynchronously (gossip, dials, claims): tests wait
// for what they assert on instead of sleeping a guessed time.
import { setTimeout as sleep } from 'node:timers/promises'

/** Resolves once `cond` holds; throws naming `what` after `ms`. */
export async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  ms = 20_000
): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await cond()) return
    await sleep(50)
  }
  throw new Error(`timed out after ${ms} ms waiting for: ${what}`)
}
