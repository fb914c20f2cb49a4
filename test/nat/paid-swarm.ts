// The NAT tier's paid swarm: home nodes each behind its own NAT (netns.ts), the relay/bootstrap
// node on the "internet", and one anvil every namespace reaches (CHAIN_IP, the topology's chain
// host) with the swarm's contracts, demo datanet and adapters registered (src/node/swarm/chain.ts,
// the same set-up as `npm run swarm -- --jobs`). Clients in the homes pay with vouchers against
// their escrow (paid-jobs.ts); the nodes claim; then the balances are reconciled to the wei
// (src/node/swarm/reconcile.ts). Reuses the cast's relay and guards (fixture.ts).
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Address, getAddress, type Hex, keccak256, toBytes } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import type { LocalChain } from '../../src/chain/anvil.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { createLogger } from '../../src/common/log.ts'
import { ROLE, type SwarmChain, setUpSwarmChain, startAnvil } from '../../src/node/swarm/chain.ts'
import { type DemoAssets, makeDemoAssets } from '../../src/node/swarm/demo.ts'
import type { ChannelLedger } from '../../src/node/swarm/driver.ts'
import { type Reconciliation, reconcile } from '../../src/node/swarm/reconcile.ts'
import { type SeededNode, seedNodeDir } from '../../src/node/swarm/seed.ts'
import { settleNodeDir } from '../../src/node/swarm/settle.ts'
import { adapterIdOf } from '../../src/protocols/infer/receipt.ts'
import { guard, INFER, network, relayAddrOf, startRelay } from './fixture.ts'
import {
  buildTopology,
  CHAIN_IP,
  type Home,
  type HomeSpec,
  removeStale,
  requireNamespaces,
  type Topology,
  teardown
} from './netns.ts'
import { type NodeProc, peersOf, runIn, startNodeIn, stopNode } from './nodes.ts'
import type { PaidJobsSpec } from './paid-jobs.ts'

const OPEN = 10n ** 18n

export interface PaidHome {
  name: string
  home: Home
  node: NodeProc
  seeded: SeededNode
  /** wei per 1k tokens */
  price: bigint
  /** adapter CIDs it holds at start (the others it fetches from another home when asked) */
  holds: string[]
}

export interface PaidSwarm {
  root: string
  topo: Topology
  relay: NodeProc
  relayAddr: string
  homes: PaidHome[]
  demo: DemoAssets
  local: LocalChain
  chain: SwarmChain
  contributors: Address[]
  close(): Promise<void>
}

export interface PaidJobsAnswer {
  outcomes: Array<{
    ok: boolean
    jobId: Hex | null
    servedBy: number | null
    connection: 'direct' | 'relayed' | null
    failures: string[]
    amountDue: string | null
    latencyMs: number
  }>
  ledger: ChannelLedger[]
  failureSamples: Record<string, string>
}

export async function buildPaidSwarm(
  homes: HomeSpec[],
  opts: { adapters?: number; maxNewTokens?: number; seed?: number } = {}
): Promise<PaidSwarm> {
  requireNamespaces()
  removeStale()
  const seed = opts.seed ?? 7
  const root = await mkdtemp(join(tmpdir(), 'openlora-natpay-'))
  const demo = await makeDemoAssets({
    root,
    adapters: opts.adapters ?? 3,
    maxNewTokens: opts.maxNewTokens ?? 16,
    seed
  })
  const topo = await buildTopology(homes, { chainHost: true })
  const unguard = guard(topo)
  const procs: NodeProc[] = []
  let local: LocalChain | undefined
  const close = async (): Promise<void> => {
    await Promise.all(procs.map((p) => stopNode(p)))
    await local?.stop()
    teardown(topo)
    unguard()
    if (!process.env.NAT_KEEP) await rm(root, { recursive: true, force: true })
  }
  try {
    local = await startAnvil(createLogger('nat-swarm', { level: 'warn' }), CHAIN_IP)
    // contributors: fresh addresses, so their token balance is exactly what the pools paid them
    const contributors = [0, 1, 2].map((j) =>
      getAddress(privateKeyToAccount(keccak256(toBytes(`openlora nat contributor ${seed} ${j}`))).address)
    )
    const seen = new Set<string>()
    const datanet = {
      name: 'openlora-nat-demo',
      owner: getAddress(local.accounts[ROLE.datanetOwner]!.address),
      createdAt: 1_764_000_000_000,
      contributions: demo.prompts
        .filter((p) => !seen.has(p.text) && seen.add(p.text))
        .map((p, j) => ({ text: p.text, contributor: contributors[j % contributors.length]! }))
    }
    const cids = demo.adapters.map((a) => a.cid)
    const N = homes.length
    // each home holds two of the adapters (as in the swarm loop): a job for the third makes it
    // fetch that adapter by CID from another home, across the NATs
    const holdsOf = (i: number) => demo.adapters.filter((_, k) => k % N === i || (k + 1) % N === i)
    const seeded: SeededNode[] = []
    for (const [i, h] of homes.entries())
      seeded.push(
        await seedNodeDir({
          dir: join(root, `home${h.name}`),
          modelDir: demo.modelDir,
          modelId: demo.modelId,
          adapterDirs: holdsOf(i).map((a) => a.dir),
          allAdapterCids: cids,
          datanet
        })
      )
    const chain = await setUpSwarmChain(local, {
      adapterCids: cids,
      modelHash: demo.weightsHash,
      datanetId: seeded[0]!.datanetId,
      datanetRoot: seeded[0]!.root,
      feePer1kTokens: 10n ** 15n,
      operators: seeded.map((s) => s.operator)
    })
    const relay = await startRelay(topo, root, demo.cacheDir)
    procs.push(relay)
    const relayAddr = relayAddrOf(relay)
    const paid: PaidHome[] = []
    for (const [i, h] of topo.homes.entries()) {
      const price = 10n ** 15n * BigInt(1 + i)
      const node = await startNodeIn({
        name: `home${h.name}`,
        ns: h.ns,
        root,
        config: {
          network: network({ bootstrap: [relayAddr] }),
          infer: { ...INFER(demo.modelDir, demo.cacheDir), maxSeqLen: 128 },
          adverts: { heartbeatMs: 2_000 },
          hardware: { detect: false, gpus: [] },
          pricing: { pricePer1kTokens: price.toString() },
          // the shared anvil, reached through the home's NAT; a claim round every 3 s
          chain: { ...chain.endpoint, claimIntervalSec: 3, minClaim: OPEN.toString(), maxBatch: 100 }
        }
      })
      procs.push(node)
      paid.push({
        name: h.name,
        home: h,
        node,
        seeded: seeded[i]!,
        price,
        holds: holdsOf(i).map((a) => a.cid)
      })
    }
    return { root, topo, relay, relayAddr, homes: paid, demo, local, chain, contributors, close }
  } catch (err) {
    await close()
    throw err
  }
}

/** Waits until every home holds a reservation on the relay (its circuit address is dialable). */
export async function untilRelayed(s: PaidSwarm, ms = 90_000): Promise<void> {
  const end = Date.now() + ms
  for (const h of s.homes) {
    while ((await peersOf(h.node)).reachability !== 'relayed') {
      if (Date.now() > end) throw new Error(`home ${h.name} holds no relay reservation after ${ms} ms`)
      await new Promise((r) => setTimeout(r, 500))
    }
  }
}

/** A client in home `from` sends `jobs` paid jobs to the nodes of homes `to`, through the relay. */
export async function paidJobs(
  s: PaidSwarm,
  from: string,
  to: string[],
  jobs: number,
  opts: { seed?: number; concurrency?: number; attemptTimeoutMs?: number } = {}
): Promise<PaidJobsAnswer> {
  const src = s.homes.find((h) => h.name === from)!
  const spec: PaidJobsSpec = {
    privateKey: s.local.privateKeys[ROLE.client]!,
    domain: s.chain.client.domain,
    nodes: to.map((name) => {
      const h = s.homes.find((x) => x.name === name)!
      return {
        i: s.homes.indexOf(h),
        peerId: h.seeded.peerId,
        operator: h.seeded.operator,
        price: h.price.toString(),
        adapters: h.holds,
        addr: `${s.relayAddr}/p2p-circuit/p2p/${h.seeded.peerId}`
      }
    }),
    model: s.demo.modelId,
    modelHash: s.demo.weightsHash,
    prompts: s.demo.prompts,
    adapterCids: s.demo.adapters.map((a) => a.cid),
    maxNewTokens: s.demo.maxNewTokens,
    jobs,
    concurrency: opts.concurrency ?? 2,
    attemptTimeoutMs: opts.attemptTimeoutMs ?? 30_000,
    seed: opts.seed ?? 11
  }
  const file = join(s.root, `paid-jobs-${from}.json`)
  await writeFile(file, JSON.stringify(spec))
  const r = await runIn(src.home.ns, ['test/nat/paid-jobs.ts', file], 400_000)
  if (r.code !== 0) throw new Error(`paid-jobs.ts in home ${from} failed (${r.code}): ${r.err.slice(-2000)}`)
  const a = JSON.parse(r.out.trim().split('\n').pop()!)
  a.ledger = a.ledger.map(
    (c: Record<string, unknown>): ChannelLedger => ({
      client: c.client as Address,
      node: c.node as Address,
      adapterId: c.adapterId as Hex,
      acknowledged: BigInt(c.acknowledged as string),
      unknown: (c.unknown as string[]).map(BigInt),
      accepted: new Map((c.accepted as Array<[Hex, string]>).map(([k, v]) => [k, BigInt(v)])),
      unknownJobs: c.unknownJobs as Hex[],
      receipts: c.receipts as number,
      amountDue: BigInt(c.amountDue as string)
    })
  )
  return a
}

/**
 * Waits for the nodes' own claims to cover every accepted receipt, stops the nodes, claims what
 * they left and withdraws the contributors' pool shares (the swarm loop's settlement), then
 * reconciles every balance against the clients' ledgers.
 */
export async function settleAndReconcile(
  s: PaidSwarm,
  ledgers: ChannelLedger[]
): Promise<{ rec: Reconciliation; claimedByNodesBeforeStop: boolean }> {
  const client = s.chain.client
  let behind = ledgers.length
  for (let waited = 0; waited < 60_000 && behind > 0; waited += 500) {
    behind = 0
    for (const c of ledgers)
      if ((await client.claimedOf(c.client, c.node, c.adapterId)) < c.amountDue) behind++
    if (behind > 0) await new Promise((r) => setTimeout(r, 500))
  }
  await Promise.all(s.homes.map((h) => stopNode(h.node)))
  const payer = new ChainClient({ ...s.chain.endpoint, account: s.local.accounts[0]! })
  const settled = []
  for (const h of s.homes)
    settled.push(await settleNodeDir(h.node.dataDir, s.chain.endpoint, s.contributors, payer))
  const ownerOf = new Map<Hex, Address>()
  for (const [cid, owner] of s.chain.ownerOf) ownerOf.set(adapterIdOf(cid).toLowerCase() as Hex, owner)
  const rec = await reconcile({
    chain: payer,
    ledger: ledgers,
    operators: s.homes.map((h) => h.seeded.operator),
    ownerOf,
    treasury: s.chain.treasury,
    contributors: s.contributors,
    client: getAddress(s.local.accounts[ROLE.client]!.address),
    deposit: s.chain.deposit,
    withdrawnToContributors: settled.reduce((a, x) => a + x.withdrawn, 0n),
    stored: new Map(settled.flatMap((x) => x.channels.map((c) => [c.channel, c] as const)))
  })
  return { rec, claimedByNodesBeforeStop: behind === 0 }
}
