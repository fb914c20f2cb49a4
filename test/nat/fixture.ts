// The NAT tier's cast: a relay/bootstrap node on the "internet", a public node, and serving nodes
// in homes behind NATs, all real `openlora start` processes in namespaces (netns.ts). Shared by
// the tier's test and `npm run bench:nat`.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeFixtures } from '../e2e/infer-fixture.ts'
import {
  buildTopology,
  type Home,
  type HomeSpec,
  PUBLIC_IP,
  RELAY_IP,
  removeStale,
  requireNamespaces,
  type Topology,
  teardown
} from './netns.ts'
import { cliIn, launch, type NodeProc, peersOf, runIn, startNodeIn, stopNode } from './nodes.ts'

export const PORT = 4010

export interface Cast {
  root: string
  topo: Topology
  relay: NodeProc
  pub: NodeProc
  /** serving nodes by home name */
  homes: Map<string, { home: Home; node: NodeProc }>
  relayAddr: string
  modelDir: string
  adapterCid: string
  modelId: string
  close(): Promise<void>
}

export const INFER = (modelDir: string | null, cacheDir: string) => ({
  models: modelDir ? [modelDir] : [],
  modelCacheDir: cacheDir,
  intraOpThreads: 1,
  maxBatch: 2,
  maxSeqLen: 256,
  slots: 4,
  warmBudgetMb: 64
})

export const network = (extra: Record<string, unknown>) => ({
  listen: [`/ip4/0.0.0.0/tcp/${PORT}`],
  mdns: false,
  relay: { keeperIntervalMs: 1_000 },
  ...extra
})

/** Tears everything down on every way out: normal end, a thrown error, a signal. */
export function guard(topo: Topology): () => void {
  const onExit = (): void => teardown(topo)
  const onSignal = (sig: NodeJS.Signals): void => {
    teardown(topo)
    process.exit(sig === 'SIGINT' ? 130 : 143)
  }
  process.on('exit', onExit)
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  return () => {
    process.off('exit', onExit)
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

export async function buildCast(
  homes: Array<HomeSpec & { serve: boolean }>,
  /** wired: every uplink a user-space wire (netns.ts), so setDelay works without netem */
  opts: { publicServes?: boolean; wired?: boolean } = {}
): Promise<Cast> {
  requireNamespaces()
  removeStale()
  const root = await mkdtemp(join(tmpdir(), 'openlora-nat-'))
  const fx = await makeFixtures(root, 1)
  const topo = await buildTopology(homes, { wired: opts.wired })
  const unguard = guard(topo)
  const procs: NodeProc[] = []
  const close = async (): Promise<void> => {
    await Promise.all(procs.map((p) => stopNode(p)))
    teardown(topo)
    unguard()
    if (!process.env.NAT_KEEP) await rm(root, { recursive: true, force: true })
  }
  try {
    const relay = await startRelay(topo, root, fx.cacheDir)
    procs.push(relay)
    const relayAddr = relayAddrOf(relay)
    const pub = await startNodeIn({
      name: 'pub',
      ns: topo.pub,
      root,
      config: {
        network: network({ bootstrap: [relayAddr] }),
        // the bench's direct baseline: a job to a node reached without a relay
        infer: INFER(opts.publicServes ? fx.modelDir : null, fx.cacheDir),
        adverts: { heartbeatMs: 2_000 }
      }
    })
    procs.push(pub)
    const byName = new Map<string, { home: Home; node: NodeProc }>()
    let adapterCid = ''
    for (const h of topo.homes) {
      if (!homes.find((x) => x.name === h.name)?.serve) continue
      const dataDir = join(root, `home${h.name}`)
      if (adapterCid === '') {
        // the first serving home holds the adapter (cold, on disk); the others must fetch it
        const added = await cliIn(h.ns, [
          'adapter',
          'add',
          fx.adapterDirs[0]!,
          '--data-dir',
          dataDir,
          '--model',
          fx.modelDir,
          '--json'
        ])
        if (added.code !== 0) throw new Error(`adapter add failed: ${added.err}`)
        adapterCid = JSON.parse(added.out).cid
      }
      const node = await startNodeIn({
        name: `home${h.name}`,
        ns: h.ns,
        root,
        config: {
          // a home behind a UPnP router asks it for a port mapping (network.upnp)
          network: network({ bootstrap: [relayAddr], upnp: h.nat === 'upnp' }),
          infer: INFER(fx.modelDir, fx.cacheDir),
          adverts: { heartbeatMs: 2_000 }
        }
      })
      procs.push(node)
      byName.set(h.name, { home: h, node })
    }
    const table = await peersOf(relay)
    const modelId =
      table.table.flatMap((e) => (e as unknown as { models: Array<{ id: string }> }).models)[0]?.id ?? ''
    return {
      root,
      topo,
      relay,
      pub,
      homes: byName,
      relayAddr,
      modelDir: fx.modelDir,
      adapterCid,
      modelId,
      close
    }
  } catch (err) {
    await close()
    throw err
  }
}

/** The relay/bootstrap node on the "internet": a relay server that announces its public address. */
export function startRelay(topo: Topology, root: string, cacheDir: string): Promise<NodeProc> {
  return startNodeIn({
    name: 'relay',
    ns: topo.inet,
    root,
    config: {
      network: network({
        announce: [`/ip4/${RELAY_IP}/tcp/${PORT}`],
        relay: { server: true, keeperIntervalMs: 1_000 }
      }),
      infer: INFER(null, cacheDir),
      adverts: { heartbeatMs: 2_000 }
    }
  })
}

export const relayAddrOf = (relay: NodeProc): string => `/ip4/${RELAY_IP}/tcp/${PORT}/p2p/${relay.peerId}`

/** Stops the relay and starts it again from the same data dir (same key, same address). */
export async function restartRelay(cast: Cast): Promise<void> {
  await stopNode(cast.relay)
  cast.relay = await launch('relay', cast.topo.inet, cast.relay.dataDir, cast.relay.configFile, cast.root)
}

export interface JobsAnswer {
  outcomes: Array<{
    ok: boolean
    connection: string | null
    ttftMs: number | null
    totalMs: number
    servedBy: string | null
    adapter: string | null
    error: string | null
    doneAt: number
  }>
}

/** Runs `count` jobs from a home's namespace to `peer`, found through the relay. */
export async function jobsFrom(
  cast: Cast,
  fromNs: string,
  peer: string,
  opts: { count?: number; adapter?: string; retryUntilMs?: number; maxTokens?: number; addr?: string } = {}
): Promise<JobsAnswer> {
  const args = [
    'test/nat/jobs.ts',
    '--peer',
    peer,
    '--bootstrap',
    cast.relayAddr,
    '--model',
    cast.modelId,
    '--count',
    String(opts.count ?? 1),
    '--max-tokens',
    String(opts.maxTokens ?? 8),
    '--retry-until-ms',
    String(opts.retryUntilMs ?? 0)
  ]
  if (opts.adapter) args.push('--adapter', opts.adapter)
  if (opts.addr) args.push('--addr', opts.addr)
  const r = await runIn(fromNs, args, 300_000)
  if (r.code !== 0) throw new Error(`jobs.ts failed (${r.code}): ${r.err.slice(-2000)}`)
  return JSON.parse(r.out.trim().split('\n').pop()!)
}

export { PUBLIC_IP, peersOf }
