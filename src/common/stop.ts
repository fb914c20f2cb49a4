// Bounded shutdown. libp2p's stop() can wait forever on a connection that never finishes
// closing (js-libp2p#2625, Lodestar#6053): nothing is left on the event loop, so a script
// awaiting it at top level exits 13 ("unsettled top-level await") and a CLI hangs. Every stop
// here runs against a timer, which also keeps the process alive until one of them settles.

/**
 * Waits for `p` at most `ms`; a rejection is reported, never thrown. Says how it ended, so the
 * caller can tear down by force what a timed-out stop left open.
 */
export async function settleWithin(
  p: Promise<unknown>,
  ms: number,
  report?: (outcome: 'timed-out' | 'failed', err?: unknown) => void
): Promise<'settled' | 'timed-out' | 'failed'> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<'timed-out'>((resolve) => {
    timer = setTimeout(() => resolve('timed-out'), ms)
  })
  const outcome = await Promise.race([
    p.then(
      () => 'settled' as const,
      (err: unknown) => {
        report?.('failed', err)
        return 'failed' as const
      }
    ),
    timeout
  ])
  clearTimeout(timer)
  if (outcome === 'timed-out') report?.('timed-out')
  return outcome
}
