// The whole loop in one call (what `npm run swarm -- --jobs M` runs): demo assets, one anvil with
// the demo datanet and adapters registered, N node processes on that chain with different
// simulated GPUs, prices and adapter sets, a client sending M paid jobs through random entry
// peers (optionally under faults), the nodes' claims, then reconciliation to the wei.
import { join } from 'node:path'
import { type Address, getAddress, type Hex, keccak256, toBytes } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { ChainClient } from '../../chain/client.ts'
import { createClientHost } from '../../client/host.ts'
import { createLogger } from '../../common/log.ts'
import { seededRng } from '../../common/random.ts'
import { adapterIdOf } from '../../protocols/infer/receipt.ts'
import { LocalSwarm } from '../local-swarm.ts'
import { ROLE, setUpSwarmChain, startAnvil } from './chain.ts'
import { Chaos, type FaultRunner } from './chaos.ts'
import { makeDemoAssets } from './demo.ts'
import { type DriverNode, JobDriver, type JobOutcome } from './driver.ts'
import { reconcile } from './reconcile.ts'
import { type SwarmReport, summarizeJobs } from './report.ts'
import { type SeededNode, seedNodeDir } from './seed.ts'
import { settleNodeDir } from './settle.ts'
import { claimsAtRestart, timeShares } from './timings.ts'

export interface SwarmLoopOptions {
  base: string
  nodes: number
  jobs: number
  adapters: number
  chaos: boolean
  concurrency?: number
  maxNewTokens?: number
  attemptTimeoutMs?: number
  seed?: number
  /** send jobs for this long (stopping at `jobs` if sooner): a soak run (scripts/soak.ts) */
  durationMs?: number
  /** extra `--set KEY=VALUE` for every node, after the loop's own (a soak's adapter churn) */
  set?: string[]
  /** extra `--set KEY=VALUE` for node i, after the loop's own (the soak's relay) */
  setFor?(i: number): string[]
  /** faults of the caller's own while jobs run (the soak's timed chaos), when `chaos` is false */
  faults?(swarm: LocalSwarm): FaultRunner
  /**
   * this node is a circuit relay (set it up with `setFor`): a share `relayedShare` of the attempts
   * reach their entry node through it, from a client that never hole-punches
   */
  relay?: { node: number; relayedShare: number }
  /** called once every node is up (a soak samples their processes from here) */
  onNodesUp?(swarm: LocalSwarm): void
  /** progress lines (stderr in the script) */
  log?(msg: string): void
  /** aborting stops the jobs, the nodes and anvil (Ctrl-C) */
  signal?: AbortSignal
  onJob?(o: JobOutcome, done: number, total: number): void
}

const GPUS = [
  [{ name: 'NVIDIA H100 80GB HBM3', memoryMb: 81559, driver: 'sim' }],
  [{ name: 'NVIDIA A100-SXM4-40GB', memoryMb: 40960, driver: 'sim' }],
  [{ name: 'NVIDIA GeForce RTX 4090', memoryMb: 24564, driver: 'sim' }],
  [
    { name: 'NVIDIA L4', memoryMb: 23034, driver: 'sim' },
    { name: 'NVIDIA L4', memoryMb: 23034, driver: 'sim' }
  ],
  []
]
/** wei per 1k tokens: 0.001, 0.002, 0.003 OPEN by node */
const PRICE_UNIT = 10n ** 15n

export async function runSwarmLoop(opts: SwarmLoopOptions): Promise<SwarmReport> {
  const log = opts.log ?? (() => {})
  const seed = opts.seed ?? 7
  const rand = seededRng(seed * 7919 + 1)
  const quiet = createLogger('swarm', { level: 'warn' })
  const phases: Record<string, number> = {}
  let t = Date.now()
  const phase = (name: string) => {
    phases[name] = Date.now() - t
    t = Date.now()
  }
  const N = opts.nodes
  const maxNewTokens = opts.maxNewTokens ?? 16

  log(
    `demo assets: tiny model (random weights, a demo), ${opts.adapters} adapters, datanet from greedy outputs`
  )
  const demo = await makeDemoAssets({ root: opts.base, adapters: opts.adapters, maxNewTokens, seed })
  phase('demoMs')

  const local = await startAnvil(quiet)
  let running: LocalSwarm | undefined
  let driver: JobDriver | undefined
  const onAbort = () => {
    driver?.stop()
    void running?.stop()
  }
  opts.signal?.addEventListener('abort', onAbort, { once: true })
  let stopClient: (() => Promise<void>) | undefined
  try {
    // Contributors: fresh addresses (no key needed: anyone may submit a withdrawal for them).
    const contributors = [0, 1, 2].map((j) =>
      getAddress(privateKeyToAccount(keccak256(toBytes(`openlora swarm contributor ${seed} ${j}`))).address)
    )
    const seen = new Set<string>()
    const contributions = demo.prompts
      .filter((p) => !seen.has(p.text) && seen.add(p.text))
      .map((p, j) => ({ text: p.text, contributor: contributors[j % contributors.length]! }))
    const datanet = {
      name: 'openlora-swarm-demo',
      owner: getAddress(local.accounts[ROLE.datanetOwner]!.address),
      createdAt: 1_764_000_000_000,
      contributions
    }
    const cids = demo.adapters.map((a) => a.cid)
    const holds = (i: number) => demo.adapters.filter((_, k) => k % N === i || (k + 1) % N === i)
    const seeded: SeededNode[] = []
    for (let i = 0; i < N; i++)
      seeded.push(
        await seedNodeDir({
          dir: join(opts.base, `node-${i}`),
          modelDir: demo.modelDir,
          modelId: demo.modelId,
          adapterDirs: holds(i).map((a) => a.dir),
          allAdapterCids: cids,
          datanet
        })
      )
    const price = (i: number) => PRICE_UNIT * BigInt(1 + (i % 3))
    const chain = await setUpSwarmChain(local, {
      adapterCids: cids,
      modelHash: demo.weightsHash,
      datanetId: seeded[0]!.datanetId,
      datanetRoot: seeded[0]!.root,
      feePer1kTokens: PRICE_UNIT,
      operators: seeded.map((s) => s.operator)
    })
    phase('chainAndSeedMs')

    const chainCfg = JSON.stringify({
      ...chain.endpoint,
      // Under chaos every payment claims at once, so claims run all through the jobs and the
      // faults hit them; otherwise a claim round every 3 s batches what came in meanwhile.
      claimIntervalSec: opts.chaos ? 2 : 3,
      minClaim: opts.chaos ? '1' : (10n ** 18n).toString(),
      maxBatch: 100
    })
    const shared = [
      `chain=${chainCfg}`,
      'log.level=info',
      'hardware.detect=false',
      'adverts.heartbeatMs=2000',
      'adverts.debounceMs=100',
      `infer.models=${JSON.stringify([demo.modelDir])}`,
      `infer.modelCacheDir=${demo.cacheDir}`,
      'infer.intraOpThreads=1',
      'infer.maxBatch=4',
      'infer.maxSeqLen=128',
      'infer.slots=8',
      'infer.maxRank=8',
      // one client sends every job: per-client limits sized for the whole swarm's load
      'infer.maxConcurrentJobsPerPeer=64',
      'infer.requestsPerSecondPerPeer=1000',
      'infer.requestBurstPerPeer=1000',
      'infer.warmBudgetMb=64',
      ...(opts.set ?? [])
    ]
    const swarm = new LocalSwarm({
      base: opts.base,
      set: shared,
      setFor: (i) => [
        `hardware.gpus=${JSON.stringify(GPUS[i % GPUS.length])}`,
        `pricing.pricePer1kTokens=${price(i)}`,
        ...(opts.setFor?.(i) ?? [])
      ]
    })
    running = swarm
    log(`starting ${N} nodes on chain ${chain.endpoint.rpcUrl}`)
    if (opts.signal?.aborted) throw new Error('stopped')
    await swarm.start(N)
    for (let waited = 0; !opts.signal?.aborted; waited += 250) {
      const lag = swarm.laggards(await swarm.poll())
      if (lag.length === 0) break
      if (waited > 60_000) throw new Error(`swarm did not converge: ${lag.join('; ')}`)
      await new Promise((r) => setTimeout(r, 250))
    }
    phase('nodesUpMs')
    log(`${N} nodes up and converged`)
    opts.onNodesUp?.(swarm)

    const host = await createClientHost()
    const relayHost = opts.relay ? await createClientHost({ holePunch: false }) : undefined
    stopClient = async () => {
      await host.stop()
      await relayHost?.stop()
    }
    const relayMember = swarm.members.find((m) => m.i === opts.relay?.node)
    const nodes: DriverNode[] = swarm.members.map((m) => ({
      i: m.i,
      peerId: seeded[m.i]!.peerId,
      operator: seeded[m.i]!.operator,
      price: price(m.i),
      adapters: holds(m.i).map((a) => a.cid),
      addr: () =>
        m.exited || opts.signal?.aborted || m.addrs.length === 0
          ? undefined
          : m.addrs.find((a) => !a.includes('/ws')),
      relayAddr: () => {
        const via = relayMember?.exited ? undefined : relayMember?.addrs.find((a) => !a.includes('/ws'))
        return m === relayMember || m.exited || !via || !m.peerId
          ? undefined
          : `${via}/p2p-circuit/p2p/${m.peerId}`
      }
    }))
    // Under chaos a paused node must outlast a job's deadline, and the run must last long enough
    // for the three faults to land while jobs still run: jobs start spread over 30 s.
    const attemptTimeoutMs = opts.attemptTimeoutMs ?? (opts.chaos ? 8_000 : 15_000)
    const chaos: FaultRunner | undefined = opts.chaos
      ? new Chaos(swarm, { jobs: opts.jobs, pauseMs: attemptTimeoutMs + 3_000, downMs: 2_000, rand, log })
      : opts.faults?.(swarm)
    driver = new JobDriver(
      {
        client: host.client,
        ...(relayHost ? { relayClient: relayHost.client } : {}),
        account: local.accounts[ROLE.client]!,
        domain: chain.client.domain,
        nodes: () => nodes
      },
      {
        model: demo.modelId,
        modelHash: demo.weightsHash,
        prompts: demo.prompts,
        adapterCids: cids,
        maxNewTokens,
        jobs: opts.jobs,
        concurrency: opts.concurrency ?? Math.min(8, 2 * N),
        attemptTimeoutMs,
        maxAttempts: 6,
        relayedShare: opts.relay?.relayedShare ?? 0,
        minRunMs: opts.chaos ? 30_000 : 0,
        seed,
        onJob: (o, done) => {
          chaos?.onJob(o, done)
          opts.onJob?.(o, done, opts.jobs)
        }
      },
      rand
    )
    const jobsStart = Date.now()
    const jobDriver = driver
    const until =
      opts.durationMs === undefined ? undefined : setTimeout(() => jobDriver.stop(), opts.durationMs)
    const outcomes = await driver.run().finally(() => clearTimeout(until))
    if (opts.signal?.aborted) throw new Error('stopped')
    const jobsWallMs = Date.now() - jobsStart
    phase('jobsMs')
    if (!opts.signal?.aborted) await chaos?.settle()
    phase('chaosSettleMs')

    // Wait for the nodes' own claims: every channel paid at least its accepted receipts' amountDue
    // (nodes claim what receipts owe, not the vouchers' signed maxima, which stay above it).
    log('waiting for the nodes to claim')
    const ledger = [...driver.ledger.values()]
    for (let waited = 0; waited < 30_000 && !opts.signal?.aborted; waited += 500) {
      let behind = 0
      for (const c of ledger)
        if ((await chain.client.claimedOf(c.client, c.node, c.adapterId)) < c.amountDue) behind++
      if (behind === 0) break
      await new Promise((r) => setTimeout(r, 500))
    }
    if (opts.signal?.aborted) throw new Error('stopped')
    phase('claimWaitMs')
    const nodeLogs = swarm.members.map((m) => join(opts.base, `node-${m.i}.log`))
    await swarm.stop()
    await stopClient()
    stopClient = undefined
    log('nodes stopped; claiming what they left, withdrawing contributor shares')
    const payer = new ChainClient({ ...chain.endpoint, account: local.accounts[0]! })
    const settled = []
    for (const m of swarm.members)
      settled.push(await settleNodeDir(m.dir, chain.endpoint, contributors, payer))
    phase('settleMs')
    const ownerOf = new Map<Hex, Address>()
    for (const [cid, owner] of chain.ownerOf) ownerOf.set(adapterIdOf(cid).toLowerCase() as Hex, owner)
    const rec = await reconcile({
      chain: payer,
      ledger,
      operators: seeded.map((s) => s.operator),
      ownerOf,
      treasury: chain.treasury,
      contributors,
      client: getAddress(local.accounts[ROLE.client]!.address),
      deposit: chain.deposit,
      withdrawnToContributors: settled.reduce((a, s) => a + s.withdrawn, 0n),
      stored: new Map(settled.flatMap((s) => s.channels.map((c) => [c.channel, c] as const)))
    })
    phase('reconcileMs')

    const ok = outcomes.filter((o) => o.ok)
    const concurrency = opts.concurrency ?? Math.min(8, 2 * N)
    return {
      nodes: N,
      config: { adapters: opts.adapters, chaos: opts.chaos, concurrency, maxNewTokens, attemptTimeoutMs },
      ...summarizeJobs(opts.jobs, outcomes, driver.failureSamples, jobsWallMs),
      vouchersClaimed: rec.vouchersClaimed,
      timeShares: await timeShares(ok, nodeLogs),
      chaos: chaos?.events ?? [],
      restartClaims: await claimsAtRestart(nodeLogs),
      settlement: {
        leftUnclaimedAtStop: settled.reduce((a, s) => a + s.leftUnclaimed, 0),
        claimedAfterStop: settled.reduce((a, s) => a + s.claimedHere, 0n).toString(),
        contributorWithdrawals: settled.reduce((a, s) => a + s.withdrawals, 0)
      },
      reconciliation: rec,
      phasesMs: phases,
      base: opts.base,
      pids: swarm.pids,
      rpcUrl: local.rpcUrl
    }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort)
    await stopClient?.().catch(() => {})
    await running?.stop()
    await local.stop()
  }
}
