// How the chain layer joins the node (registered in src/node/extensions.ts): a `chain` config
// section and a `chain` service (ChainService + Claimer) started and stopped with the node. The
// infer protocol finds it as `components.services.chain` (its PaymentGate). While it runs, the
// service writes its endpoint to <dataDir>/chain.json so that `openlora deposit | balance |
// rewards --data-dir DIR` reach the same chain, and answers GET /chain and /rewards on the admin
// endpoint. `preset: 'none'` (the library default) runs no chain: only free jobs.
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { decimalString, parseWith, z } from '../common/schema.ts'
import type { NodeComponents, NodeConfig, NodeExtension, Service } from '../common/service.ts'
import { openOf } from '../metrics/registry.ts'
import {
  ANVIL_CHAIN_ID,
  ChainAddressesSchema,
  type ChainConfig,
  ChainIdSchema,
  chainConfigError,
  OPENLEDGER_TESTNET_CHAIN_ID,
  parseChainConfig,
  RpcUrlSchema,
  WithdrawalDelaySchema
} from './config.ts'
import { ChainConfigError } from './errors.ts'
import { RegistrationGate } from './registration-gate.ts'
import { ChainService } from './service.ts'

/** The file a running node writes its chain endpoint to (what the chain CLI commands read). */
export const CHAIN_ENDPOINT_FILE = 'chain.json'
/** the funded contributor pools with their leaves (src/chain/published-pools.ts) */
export const POOLS_FILE = 'pools.json'

// 5 minutes batches a busy node's vouchers into a few claims an hour (gas per voucher falls to
// ~21k at 100 per claim, docs/CHAIN.md) while a crash loses nothing: vouchers are in LevelDB.
export const DEFAULT_CLAIM_INTERVAL_SEC = 300
export const DEFAULT_MIN_CLAIM = 10n ** 18n
export const DEFAULT_MAX_BATCH = 100

const PRESETS = ['none', 'local', 'testnet', 'custom'] as const

/** The node's `chain` section: which chain (if any) and how the claimer batches. */
export const NodeChainConfigSchema = z
  .strictObject({
    /**
     * absent: custom when rpcUrl is set, else none; `local` with an rpcUrl joins an anvil already
     * running (chain id 31337 unless given) instead of starting one
     */
    preset: z.enum(PRESETS).optional(),
    rpcUrl: RpcUrlSchema.optional(),
    chainId: ChainIdSchema.optional(),
    addresses: ChainAddressesSchema.optional(),
    withdrawalDelaySec: WithdrawalDelaySchema.optional(),
    /** seconds between claim rounds */
    claimIntervalSec: z
      .int()
      .min(1)
      .max(7 * 86400)
      .default(DEFAULT_CLAIM_INTERVAL_SEC),
    /** claim at once when this many wei are unclaimed */
    minClaim: decimalString
      .default(DEFAULT_MIN_CLAIM.toString())
      .describe('a decimal string of wei (e.g. "1000000000000000000")'),
    /** vouchers per claim transaction */
    maxBatch: z.int().min(1).max(500).default(DEFAULT_MAX_BATCH),
    /**
     * fsync each payment batch before the job's result goes out, so a power cut (not only a
     * process kill) cannot lose an acknowledged voucher. On by default: two fsyncs per paid job,
     * measured at +0.6 ms p50 (npm run bench:fsync, docs/CHAIN.md), small beside the job itself
     */
    syncWrites: z.boolean().default(true)
  })
  .superRefine((o, ctx) => {
    const preset = presetOf(o)
    const need = (k: 'rpcUrl' | 'chainId' | 'addresses', why: string): void => {
      if (o[k] == null) ctx.addIssue({ code: 'custom', path: [k], message: why })
    }
    if (preset === 'none') {
      for (const k of ['rpcUrl', 'chainId', 'addresses'] as const)
        if (o[k] != null)
          ctx.addIssue({
            code: 'custom',
            path: [k],
            message: 'preset "none" (no chain) takes no rpcUrl, chainId or addresses'
          })
    } else if (preset === 'testnet') {
      const why =
        'the testnet preset (chain id 161201) needs rpcUrl and addresses { token, adapterRegistry, datanetRegistry, settlement }'
      need('rpcUrl', why)
      need('addresses', why)
    } else if (preset === 'custom') {
      const why = 'a custom chain needs rpcUrl, chainId and addresses'
      need('rpcUrl', why)
      need('chainId', why)
      need('addresses', why)
    } else if (o.rpcUrl != null) need('addresses', 'joining a running local chain needs its addresses')
  })
  .describe(
    '{ "preset": "none" } (free jobs only), { "preset": "local" } (the node starts anvil and deploys), ' +
      '{ "preset": "testnet", "rpcUrl", "addresses" } or { "rpcUrl", "chainId", "addresses" }, ' +
      'plus optional claimIntervalSec, minClaim (wei string), maxBatch (docs/CHAIN.md)'
  )

export type NodeChainConfig = z.input<typeof NodeChainConfigSchema>

function presetOf(o: { preset?: (typeof PRESETS)[number]; rpcUrl?: string }): (typeof PRESETS)[number] {
  return o.preset ?? (o.rpcUrl != null ? 'custom' : 'none')
}

export interface ParsedNodeChainConfig {
  /** null = no chain (preset none) */
  chain: ChainConfig | null
  claimIntervalSec: number
  minClaim: bigint
  maxBatch: number
  syncWrites: boolean
}

/** Validates the node's `chain` section; throws ChainConfigError naming the key and what is allowed. */
export function parseNodeChainConfig(x: unknown, key = 'chain'): ParsedNodeChainConfig {
  const o = parseWith(NodeChainConfigSchema, x, { at: key, error: chainConfigError })
  const common = {
    claimIntervalSec: o.claimIntervalSec,
    minClaim: BigInt(o.minClaim),
    maxBatch: o.maxBatch,
    syncWrites: o.syncWrites
  }
  const preset = presetOf(o)
  if (preset === 'none') return { chain: null, ...common }
  if (preset === 'local' && o.rpcUrl == null)
    return { chain: { preset: 'local', withdrawalDelaySec: o.withdrawalDelaySec }, ...common }
  // `local` with an rpcUrl: an anvil someone else started (a swarm's shared chain), not a new one
  const chainId = o.chainId ?? (preset === 'local' ? ANVIL_CHAIN_ID : OPENLEDGER_TESTNET_CHAIN_ID)
  const remote = { rpcUrl: o.rpcUrl!, chainId, addresses: o.addresses! }
  return {
    chain: parseChainConfig({ ...remote, preset: preset === 'testnet' ? 'testnet' : 'custom' }, key),
    ...common
  }
}

export function chainConfigOf(config: NodeConfig): ParsedNodeChainConfig {
  return parseNodeChainConfig(config.chain ?? {})
}

/** The node's chain service: a ChainService that also publishes its endpoint while it runs. */
export function chainService(components: NodeComponents): ChainService & Service {
  const cfg = chainConfigOf(components.config)
  if (!cfg.chain) throw new ChainConfigError('chain.preset is "none": this node runs no chain service')
  const log = components.logger.child('chain')
  const service = new ChainService(
    {
      chain: cfg.chain,
      claimer: {
        claimIntervalSec: cfg.claimIntervalSec,
        minClaim: cfg.minClaim,
        maxBatch: cfg.maxBatch,
        metrics: components.metrics
      },
      // contributors withdraw from this file without the node (M1)
      poolsFile: join(components.dataDir.path, POOLS_FILE),
      syncWrites: cfg.syncWrites
    },
    { db: components.db, operator: components.identity.operator.account, logger: log }
  )
  const file = join(components.dataDir.path, CHAIN_ENDPOINT_FILE)
  // vouchers this node holds and has not claimed yet, read from its store at each scrape
  const m = components.metrics
  m.addCollector(async () => {
    let held = 0
    let unclaimed = 0n
    for (const u of await service.store.unclaimed(components.identity.operator.address)) {
      held++
      unclaimed += u.unclaimed
    }
    m.vouchersHeld.set(held)
    m.vouchersUnclaimed.set(openOf(unclaimed))
  })
  const start = service.start.bind(service)
  const stop = service.stop.bind(service)
  components.admin.route('/chain', () => ({
    ...service.endpoint,
    operator: components.identity.operator.address,
    pricePer1kTokens: components.config.pricing.pricePer1kTokens
  }))
  components.admin.route('/rewards', async () =>
    JSON.parse(JSON.stringify(await service.rewards(), (_k, v) => (typeof v === 'bigint' ? v.toString() : v)))
  )
  // H7: adapters are advertised (adverts, DHT provider records) only once registered on-chain,
  // with every datanet they declare
  let restriction: { changed(): void; remove(): void } | undefined
  const gate = new RegistrationGate({
    ready: async (id) => {
      const client = service.client
      if (BigInt(await client.adapterOwner(id)) === 0n) return false
      const { datanets } = await client.getAdapter(id)
      for (const d of datanets) if (!(await client.datanetExists(d))) return false
      return true
    },
    onRegistered: () => restriction?.changed(),
    logger: log
  })
  return Object.assign(service, {
    start: async () => {
      await start()
      restriction = components.capabilities.restrict(async (caps) => ({
        ...caps,
        adapters: {
          hot: await gate.registered(caps.adapters.hot),
          warm: await gate.registered(caps.adapters.warm),
          cold: await gate.registered(caps.adapters.cold)
        }
      }))
      gate.start()
      const local = service.localChain
      const endpoint = {
        preset: 'custom',
        ...service.endpoint,
        operator: components.identity.operator.address,
        // anvil's well-known dev keys (local preset only): for local testing, never real funds
        ...(local
          ? {
              devAccounts: local.accounts.map((a, i) => ({
                address: a.address,
                privateKey: local.privateKeys[i]
              }))
            }
          : {})
      }
      writeFileSync(file, `${JSON.stringify(endpoint, null, 2)}\n`, { mode: 0o600 })
    },
    stop: async () => {
      gate.stop()
      restriction?.remove()
      // The endpoint of a local chain dies with the node; a remote one stays valid but the file
      // is this run's, so it goes too (the next start writes it again).
      rmSync(file, { force: true })
      await stop()
    }
  })
}

declare module '../common/service.ts' {
  interface Services {
    chain: ChainService
  }
  interface NodeConfig {
    chain?: NodeChainConfig
  }
}

export const chainExtension: NodeExtension = {
  name: 'chain',
  config: { chain: { schema: NodeChainConfigSchema } },
  services: (config) => (chainConfigOf(config).chain ? { chain: chainService } : {})
}
