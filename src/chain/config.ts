// Chain configuration: the presets `local` (anvil started and contracts deployed by the node),
// `testnet` (OpenLedger testnet, chain id 161201: RPC URL and addresses from config) and an
// explicit RPC URL + chain id + addresses. Validated once, with errors naming the key.
import { type Address, getAddress, isAddress } from 'viem'
import { ChainConfigError } from './errors.ts'

export const OPENLEDGER_TESTNET_CHAIN_ID = 161201
export const OPENLEDGER_MAINNET_CHAIN_ID = 1612
export const ANVIL_CHAIN_ID = 31337

export interface ChainAddresses {
  token: Address
  adapterRegistry: Address
  datanetRegistry: Address
  settlement: Address
}

export interface LocalChainConfig {
  preset: 'local'
  /** seconds between a client's withdrawal request and its withdrawal on the local chain */
  withdrawalDelaySec?: number
}

export interface RemoteChainConfig {
  preset: 'testnet' | 'custom'
  rpcUrl: string
  chainId: number
  addresses: ChainAddresses
}

export type ChainConfig = LocalChainConfig | RemoteChainConfig

const ADDRESS_KEYS = ['token', 'adapterRegistry', 'datanetRegistry', 'settlement'] as const

/** Where a node or CLI talks to once a chain is up (a local one or a remote one). */
export interface ChainEndpoint {
  rpcUrl: string
  chainId: number
  addresses: ChainAddresses
}

function parseAddresses(x: unknown, key: string): ChainAddresses {
  if (x == null || typeof x !== 'object')
    throw new ChainConfigError(`${key} must be an object with ${ADDRESS_KEYS.join(', ')}`)
  const o = x as Record<string, unknown>
  const out = {} as Record<(typeof ADDRESS_KEYS)[number], Address>
  for (const k of ADDRESS_KEYS) {
    const v = o[k]
    if (typeof v !== 'string' || !isAddress(v, { strict: false }))
      throw new ChainConfigError(
        `${key}.${k} must be a 0x-prefixed 20-byte address, got ${JSON.stringify(v)}`,
        { key: `${key}.${k}` }
      )
    out[k] = getAddress(v)
  }
  return out
}

function parseRpcUrl(v: unknown, key: string): string {
  if (typeof v !== 'string' || !/^(https?|wss?):\/\/\S+$/.test(v))
    throw new ChainConfigError(`${key} must be an http(s):// or ws(s):// URL, got ${JSON.stringify(v)}`, {
      key
    })
  return v
}

/** Validates a `chain` config section. Allowed shapes: {preset:'local'}, {preset:'testnet', rpcUrl,
 * addresses}, or {rpcUrl, chainId, addresses}. */
export function parseChainConfig(x: unknown, key = 'chain'): ChainConfig {
  if (x == null) return { preset: 'local' }
  if (typeof x !== 'object') throw new ChainConfigError(`${key} must be an object`, { key })
  const o = x as Record<string, unknown>
  const preset = o.preset ?? (o.rpcUrl != null ? 'custom' : 'local')
  if (preset === 'local') {
    const d = o.withdrawalDelaySec
    // Settlement refuses a delay under MIN_WITHDRAWAL_DELAY (1 hour): see docs/THREATS.md L1
    if (d != null && (typeof d !== 'number' || !Number.isInteger(d) || d < 3600 || d > 30 * 86400))
      throw new ChainConfigError(`${key}.withdrawalDelaySec must be an integer 3600..2592000`, {
        key: `${key}.withdrawalDelaySec`
      })
    return { preset: 'local', withdrawalDelaySec: d as number | undefined }
  }
  if (preset !== 'testnet' && preset !== 'custom')
    throw new ChainConfigError(
      `${key}.preset must be one of local, testnet, custom; got ${JSON.stringify(preset)}`,
      {
        key: `${key}.preset`
      }
    )
  const rpcUrl = parseRpcUrl(o.rpcUrl, `${key}.rpcUrl`)
  let chainId: number
  if (preset === 'testnet') {
    if (o.chainId != null && o.chainId !== OPENLEDGER_TESTNET_CHAIN_ID)
      throw new ChainConfigError(`${key}.chainId is ${OPENLEDGER_TESTNET_CHAIN_ID} for the testnet preset`, {
        key: `${key}.chainId`
      })
    chainId = OPENLEDGER_TESTNET_CHAIN_ID
  } else {
    if (typeof o.chainId !== 'number' || !Number.isSafeInteger(o.chainId) || o.chainId <= 0)
      throw new ChainConfigError(`${key}.chainId must be a positive integer`, { key: `${key}.chainId` })
    chainId = o.chainId
  }
  return { preset, rpcUrl, chainId, addresses: parseAddresses(o.addresses, `${key}.addresses`) }
}

/** Validates an endpoint file (what `openlora chain local` writes). */
export function parseChainEndpoint(x: unknown, key = 'chain'): ChainEndpoint {
  if (x == null || typeof x !== 'object') throw new ChainConfigError(`${key} must be an object`, { key })
  const o = x as Record<string, unknown>
  const rpcUrl = parseRpcUrl(o.rpcUrl, `${key}.rpcUrl`)
  if (typeof o.chainId !== 'number' || !Number.isSafeInteger(o.chainId) || o.chainId <= 0)
    throw new ChainConfigError(`${key}.chainId must be a positive integer`, { key: `${key}.chainId` })
  return { rpcUrl, chainId: o.chainId, addresses: parseAddresses(o.addresses, `${key}.addresses`) }
}

/** For the node's config validator (a `json` spec's check): null when valid, else the message. */
export function chainConfigProblem(x: unknown): string | null {
  try {
    parseChainConfig(x)
    return null
  } catch (err) {
    return (err as Error).message
  }
}
