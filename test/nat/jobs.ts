// Runs inside a home's namespace: one client host that finds a peer through the bootstrap relay
// and sends it N jobs, one after another, printing one JSON object with each job's outcome, the
// connection that carried it and the client-side time to first token.
//
//   node test/nat/jobs.ts (--peer ID --bootstrap ADDR | --addr MULTIADDR) --model M [--adapter CID] [--count N]
//        [--max-tokens N] [--direct-wait-ms MS] [--retry-until-ms MS]
import { parseArgs } from 'node:util'
import { findPeer } from '../../src/client/find-peer.ts'
import { createClientHost } from '../../src/client/host.ts'

const { values } = parseArgs({
  options: {
    peer: { type: 'string' },
    /** dial this multiaddr instead of finding the peer (bench:nat's direct baseline) */
    addr: { type: 'string' },
    bootstrap: { type: 'string' },
    model: { type: 'string' },
    adapter: { type: 'string' },
    count: { type: 'string', default: '1' },
    'max-tokens': { type: 'string', default: '8' },
    'retry-until-ms': { type: 'string', default: '0' }
  }
})

interface JobOutcome {
  ok: boolean
  connection: string | null
  ttftMs: number | null
  totalMs: number
  servedBy: string | null
  adapter: string | null
  error: string | null
  /** epoch ms when the job ended (bench:nat times recovery against the relay's restart) */
  doneAt: number
}

const { client, node, stop } = await createClientHost()
const outcomes: JobOutcome[] = []
const retryUntil = Date.now() + Number(values['retry-until-ms'])
try {
  for (let i = 0; i < Number(values.count); i++) {
    for (;;) {
      const t0 = performance.now()
      let first: number | null = null
      try {
        const target = values.addr ?? (await findPeer(node, values.peer!, [values.bootstrap!]))
        const r = await client.infer(
          target,
          {
            model: values.model!,
            adapter: values.adapter ?? null,
            promptIds: [1, 2, 3, 4, 5, 6, 7, 8],
            params: { maxNewTokens: Number(values['max-tokens']) },
            timeoutMs: 60_000
          },
          { onToken: () => void (first ??= performance.now() - t0) }
        )
        outcomes.push({
          ok: r.verification?.ok === true,
          connection: r.connection ?? null,
          ttftMs: first,
          totalMs: performance.now() - t0,
          servedBy: r.servedBy,
          adapter: r.receipt.body.adapter ?? null,
          error: r.verification?.ok ? null : JSON.stringify(r.verification),
          doneAt: Date.now()
        })
        break
      } catch (err) {
        // a job that must succeed again after an outage (relay restart) retries until its deadline
        if (Date.now() < retryUntil) {
          await new Promise((r) => setTimeout(r, 200))
          continue
        }
        const e = err as Error & { code?: string }
        outcomes.push({
          ok: false,
          connection: null,
          ttftMs: null,
          totalMs: performance.now() - t0,
          servedBy: null,
          adapter: null,
          error: `${e.code ?? e.name}: ${e.message}`,
          doneAt: Date.now()
        })
        break
      }
    }
  }
} finally {
  await stop()
}
console.log(JSON.stringify({ outcomes }))
