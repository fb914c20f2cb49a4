// Real OpenLoRA nodes in one process for the infer e2e tests and the protocol benchmark: the
// node's own composition root (libp2p on 127.0.0.1, adverts, PeerTable) with the infer extension
// serving a random tiny checkpoint through the real engine and AdapterStore.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createLogger } from '../../src/common/log.ts'
import { requireService } from '../../src/common/service.ts'
import { loadConfig, type Override } from '../../src/node/config/load.ts'
import { createNode, type NodeOverrides, type OpenLoraNode } from '../../src/node/node.ts'
import { INFER_CONFIG_DEFAULTS, type InferConfig } from '../../src/protocols/infer/extension.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import type { ServingStack } from '../../src/serving/stack.ts'

export interface Fixtures {
  modelDir: string
  cacheDir: string
  adapterDirs: string[]
}

export async function makeFixtures(root: string, adapters = 2): Promise<Fixtures> {
  const modelDir = join(root, 'model')
  await makeModel({ out: modelDir, preset: 'tiny', seed: 3 })
  const adapterDirs: string[] = []
  for (let i = 0; i < adapters; i++) {
    const out = join(root, `adapter-${i}`)
    await makeAdapter({ model: modelDir, out, rank: 8, targets: ['q_proj', 'v_proj'], seed: 40 + i })
    adapterDirs.push(out)
  }
  const cacheDir = join(root, 'model-cache')
  await mkdir(cacheDir, { recursive: true })
  return { modelDir, cacheDir, adapterDirs }
}

export interface StartOptions {
  serve?: boolean
  bootstrap?: string[]
  infer?: Partial<InferConfig>
  overrides?: NodeOverrides
  price?: string
  /** run the admin endpoint (what `openlora peers` and `adapter list` ask) */
  admin?: boolean
  /** more config keys, e.g. { chain: { preset: 'local' } } */
  config?: Record<string, unknown>
}

export async function startNode(
  root: string,
  name: string,
  fx: Fixtures,
  opts: StartOptions = {}
): Promise<OpenLoraNode> {
  const set = (key: string, value: unknown): Override => ({ key, value, source: 'test' })
  const config = loadConfig({
    env: {},
    overrides: [
      set('dataDir', join(root, name)),
      set('log.level', (process.env.OPENLORA_LOG_LEVEL as 'silent' | undefined) ?? 'silent'),
      set('network.listen', ['/ip4/127.0.0.1/tcp/0']),
      set('network.mdns', false),
      set('gateway.port', 0),
      set('network.bootstrap', opts.bootstrap ?? []),
      set('admin.enabled', opts.admin ?? false),
      set('adverts.heartbeatMs', 1000),
      set('adverts.debounceMs', 50),
      set('pricing.pricePer1kTokens', opts.price ?? '1000'),
      // the whole section is set at once: start from its defaults so keys added later stay valid
      set('infer', {
        ...INFER_CONFIG_DEFAULTS,
        models: opts.serve === false ? [] : [fx.modelDir],
        modelCacheDir: fx.cacheDir,
        executionProvider: 'cpu',
        intraOpThreads: 1,
        maxBatch: 4,
        maxSeqLen: 512,
        slots: 8,
        maxRank: 16,
        maxQueued: 64,
        maxNewTokens: 256,
        warmBudgetMb: 64,
        maxConcurrentJobsPerPeer: 8,
        requestsPerSecondPerPeer: 1000,
        requestBurstPerPeer: 1000,
        maxConcurrentJobs: 128,
        maxPromptTokens: 256,
        fetchAdapters: true,
        ...opts.infer
      }),
      ...Object.entries(opts.config ?? {}).map(([k, v]) => set(k, v))
    ]
  })
  const logger = createLogger(`node:${name}`, { level: config.log.level })
  const node = await createNode(config, { logger, ...opts.overrides })
  await node.start()
  return node
}

export function serving(node: OpenLoraNode): ServingStack {
  return requireService(node.services, 'serving')
}

/** True when `viewer`'s PeerTable lists `peer` holding `cid` in one of `tiers`. */
export function sees(
  viewer: OpenLoraNode,
  peer: OpenLoraNode,
  cid: string,
  tiers: ('hot' | 'warm' | 'cold')[]
): boolean {
  return viewer.peerTable.query({ adapter: cid, tiers }).some((m) => m.peerId === peer.peerId)
}

export { runCli } from '../helpers/cli.ts'
export { until } from '../helpers/wait.ts'
/** The node's TCP address (what a client dials and other nodes bootstrap from). */
export { tcpAddr as addrOf } from './node-fixture.ts'
