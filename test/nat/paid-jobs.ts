// Runs inside a home's namespace: the swarm's paying client (src/node/swarm/driver.ts, the same
// JobDriver as `npm run swarm -- --jobs`) sending paid jobs, with vouchers against the escrow, to
// nodes in other homes reached through the relay (a /p2p-circuit address; DCUtR may make the
// connection direct). Vouchers are signed here, offline: the client needs no chain access.
// Prints one JSON line: each job's outcome and the client's channel ledger (what reconciliation
// checks the chain against), bigints as decimal strings.
//
//   node test/nat/paid-jobs.ts SPEC.json
import { readFileSync } from 'node:fs'
import type { Address, Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { createClientHost } from '../../src/client/host.ts'
import { seededRng } from '../../src/common/random.ts'
import { type DriverOptions, JobDriver } from '../../src/node/swarm/driver.ts'

/** What the driver takes (DriverOptions' JSON-able part), plus the key and the nodes to pay. */
export interface PaidJobsSpec
  extends Pick<
    DriverOptions,
    | 'model'
    | 'modelHash'
    | 'prompts'
    | 'adapterCids'
    | 'maxNewTokens'
    | 'jobs'
    | 'concurrency'
    | 'attemptTimeoutMs'
  > {
  privateKey: Hex
  domain: { chainId: number; settlement: Address }
  nodes: Array<{
    i: number
    peerId: string
    operator: Address
    price: string
    adapters: string[]
    addr: string
  }>
  seed: number
}

const spec: PaidJobsSpec = JSON.parse(readFileSync(process.argv[2]!, 'utf8'))
const host = await createClientHost()
try {
  const nodes = spec.nodes.map((n) => ({ ...n, price: BigInt(n.price), addr: () => n.addr }))
  const driver = new JobDriver(
    {
      client: host.client,
      account: privateKeyToAccount(spec.privateKey),
      domain: spec.domain,
      nodes: () => nodes
    },
    {
      model: spec.model,
      modelHash: spec.modelHash,
      prompts: spec.prompts,
      adapterCids: spec.adapterCids,
      maxNewTokens: spec.maxNewTokens,
      jobs: spec.jobs,
      concurrency: spec.concurrency,
      attemptTimeoutMs: spec.attemptTimeoutMs,
      maxAttempts: 4,
      seed: spec.seed
    },
    seededRng(spec.seed)
  )
  const outcomes = await driver.run()
  const big = (_k: string, v: unknown) =>
    typeof v === 'bigint' ? v.toString() : v instanceof Map ? [...v.entries()] : v
  console.log(
    JSON.stringify(
      {
        outcomes: outcomes.map((o) => ({
          ok: o.ok,
          jobId: o.jobId,
          servedBy: o.servedBy,
          connection: o.connection ?? null,
          failures: o.failures,
          amountDue: o.amountDue,
          latencyMs: Math.round(o.latencyMs)
        })),
        ledger: [...driver.ledger.values()],
        failureSamples: Object.fromEntries(driver.failureSamples)
      },
      big
    )
  )
} finally {
  await host.stop()
}
