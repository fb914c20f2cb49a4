// How the chain layer joins the node (registered in src/node/extensions.ts): a `chain` config
// section and a `chain` service (ChainService + Claimer) started and stopped with the node. The
// infer protocol finds it as `components.services.chain` (its PaymentGate). While it runs, the
// service writes its endpoint to <dataDir>/chain.json so that `openlora deposit | balance |
// rewards --data-dir DIR` reach the same chain, and answers GET /chain and /rewards on the admin
// endpoint. `preset: 'none'` (the library default) runs no chain: only free jobs.
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Spec } from '../common/config-spec.ts'
import type { NodeComponents, NodeConfig, NodeExtension, Service } from '../common/service.ts'
import { ANVIL_CHAIN_ID, type ChainConfig, parseChainConfig } from './config.ts'
import { ChainConfigError } from './errors.ts'
import { ChainService } from './service.ts'

/** The file a running node writes its chain endpoint to (what the chain CLI commands read). */
export const CHAIN_ENDPOINT_FILE = 'chain.json'
/** the funded contributor pools with their leaves (src/chain/published-pools.ts) */
export const POOLS_FILE = 'pools.json'

export interface NodeChainConfig {
  /**
   * none | local | testnet | custom (absent: custom when rpcUrl is set, else none); `local` with
   * an rpcUrl joins an anvil already running (chain id 31337 unless given) instead of starting one
   */
  preset?: 'none' | 'local' | 'testnet' | 'custom'
  rpcUrl?: string
  chainId?: number
  addresses?: Record<string, string>
  /** local preset: seconds between a client's withdrawal request and its withdrawal */
  withdrawalDelaySec?: number
  /** seconds between claim rounds */
  claimIntervalSec?: number
  /** claim at once when this many wei are unclaimed (decimal string) */
  minClaim?: string
  /** vouchers per claim transaction */
  maxBatch?: number
}

export interface ParsedNodeChainConfig {
  /** null = no chain (preset none) */
  chain: ChainConfig | null
  claimIntervalSec: number
  minClaim: bigint
  maxBatch: number
}

// 5 minutes batches a busy node's vouchers into a few claims an hour (gas per voucher falls to
// ~21k at 100 per claim, docs/CHAIN.md) while a crash loses nothing: vouchers are in LevelDB.
export const DEFAULT_CLAIM_INTERVAL_SEC = 300
export const DEFAULT_MIN_CLAIM = 10n ** 18n
export const DEFAULT_MAX_BATCH = 100
const NODE_KEYS = ['claimIntervalSec', 'minClaim', 'maxBatch'] as const
const CHAIN_KEYS = ['preset', 'rpcUrl', 'chainId', 'addresses', 'withdrawalDelaySec']

/** Validates the node's `chain` section; throws ChainConfigError naming the key and what is allowed. */
export function parseNodeChainConfig(x: unknown, key = 'chain'): ParsedNodeChainConfig {
  if (x == null || typeof x !== 'object' || Array.isArray(x))
    throw new ChainConfigError(`${key} must be an object like { "preset": "local" }`, { key })
  const o = x as Record<string, unknown>
  for (const k of Object.keys(o))
    if (!CHAIN_KEYS.includes(k) && !(NODE_KEYS as readonly string[]).includes(k))
      throw new ChainConfigError(
        `${key}.${k} is not a chain key; allowed: ${[...CHAIN_KEYS, ...NODE_KEYS].join(', ')}`,
        { key: `${key}.${k}` }
      )
  const claimIntervalSec = o.claimIntervalSec ?? DEFAULT_CLAIM_INTERVAL_SEC
  if (
    typeof claimIntervalSec !== 'number' ||
    !Number.isInteger(claimIntervalSec) ||
    claimIntervalSec < 1 ||
    claimIntervalSec > 7 * 86400
  )
    throw new ChainConfigError(
      `${key}.claimIntervalSec must be an integer 1..604800 (seconds), got ${JSON.stringify(claimIntervalSec)}`,
      { key: `${key}.claimIntervalSec` }
    )
  const minClaimRaw = o.minClaim ?? DEFAULT_MIN_CLAIM.toString()
  if (typeof minClaimRaw !== 'string' || !/^(0|[1-9][0-9]{0,77})$/.test(minClaimRaw))
    throw new ChainConfigError(
      `${key}.minClaim must be a decimal string of wei (e.g. "1000000000000000000"), got ${JSON.stringify(minClaimRaw)}`,
      { key: `${key}.minClaim` }
    )
  const maxBatch = o.maxBatch ?? DEFAULT_MAX_BATCH
  if (typeof maxBatch !== 'number' || !Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 500)
    throw new ChainConfigError(`${key}.maxBatch must be an integer 1..500, got ${JSON.stringify(maxBatch)}`, {
      key: `${key}.maxBatch`
    })
  const common = { claimIntervalSec, minClaim: BigInt(minClaimRaw), maxBatch }
  const preset = o.preset ?? (o.rpcUrl != null ? 'custom' : 'none')
  if (preset === 'none') {
    const stray = ['rpcUrl', 'chainId', 'addresses'].find((k) => o[k] != null)
    if (stray)
      throw new ChainConfigError(`${key}.${stray} makes no sense with preset "none" (no chain)`, {
        key: `${key}.${stray}`
      })
    return { chain: null, ...common }
  }
  if (preset === 'testnet')
    for (const k of ['rpcUrl', 'addresses'])
      if (o[k] == null)
        throw new ChainConfigError(
          `${key}.${k} is missing: the testnet preset (chain id 161201) needs rpcUrl and addresses { token, adapterRegistry, datanetRegistry, settlement }`,
          { key: `${key}.${k}` }
        )
  if (preset !== 'local' && preset !== 'testnet' && preset !== 'custom')
    throw new ChainConfigError(
      `${key}.preset must be one of none, local, testnet, custom; got ${JSON.stringify(preset)}`,
      { key: `${key}.preset` }
    )
  const chainPart = Object.fromEntries(Object.entries(o).filter(([k]) => CHAIN_KEYS.includes(k)))
  // `local` with an rpcUrl: an anvil someone else started (a swarm's shared chain), not a new one
  if (preset === 'local' && o.rpcUrl != null)
    return {
      chain: parseChainConfig({ chainId: ANVIL_CHAIN_ID, ...chainPart, preset: 'custom' }, key),
      ...common
    }
  return { chain: parseChainConfig({ ...chainPart, preset }, key), ...common }
}

function chainConfigCheck(x: unknown): string | null {
  try {
    parseNodeChainConfig(x)
    return null
  } catch (err) {
    return (err as Error).message
  }
}

export const CHAIN_CONFIG_SPEC: Spec = {
  type: 'json',
  check: chainConfigCheck,
  hint:
    '{ "preset": "none" } (free jobs only), { "preset": "local" } (the node starts anvil and deploys), ' +
    '{ "preset": "testnet", "rpcUrl", "addresses" } or { "rpcUrl", "chainId", "addresses" }, ' +
    'plus optional claimIntervalSec, minClaim (wei string), maxBatch (docs/CHAIN.md)'
}

/** The library default: no chain. `openlora start --demo` (npm start) uses LOCAL_CHAIN_DEFAULTS. */
export const CHAIN_CONFIG_DEFAULTS: NodeChainConfig = { preset: 'none' }
export const LOCAL_CHAIN_DEFAULTS: NodeChainConfig = { preset: 'local' }

export function chainConfigOf(config: NodeConfig): ParsedNodeChainConfig {
  return parseNodeChainConfig(config.chain ?? CHAIN_CONFIG_DEFAULTS)
}

/** The node's chain service: a ChainService that also publishes its endpoint while it runs. */
export function chainService(components: NodeComponents): ChainService & Service {
  const cfg = chainConfigOf(components.config)
  if (!cfg.chain) throw new ChainConfigError('chain.preset is "none": this node runs no chain service')
  const log = components.logger.child('chain')
  const service = new ChainService(
    {
      chain: cfg.chain,
      claimer: { claimIntervalSec: cfg.claimIntervalSec, minClaim: cfg.minClaim, maxBatch: cfg.maxBatch },
      // contributors withdraw from this file without the node (M1)
      poolsFile: join(components.dataDir.path, POOLS_FILE)
    },
    { db: components.db, operator: components.identity.operator.account, logger: log }
  )
  const file = join(components.dataDir.path, CHAIN_ENDPOINT_FILE)
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
  return Object.assign(service, {
    start: async () => {
      await start()
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
  config: { chain: { spec: CHAIN_CONFIG_SPEC, defaults: CHAIN_CONFIG_DEFAULTS } },
  services: (config) => (chainConfigOf(config).chain ? { chain: chainService } : {})
}
