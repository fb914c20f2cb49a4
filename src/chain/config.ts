// Chain configuration: the presets `local` (anvil started and contracts deployed by the node),
// `testnet` (OpenLedger testnet, chain id 161201: RPC URL and addresses from config) and an
// explicit RPC URL + chain id + addresses. One zod schema per shape; errors name the key.
import { getAddress } from 'viem'
import { messageOf, parseWith, type SchemaIssue, z } from '../common/schema.ts'
import { ChainConfigError } from './errors.ts'

export const OPENLEDGER_TESTNET_CHAIN_ID = 161201
export const OPENLEDGER_MAINNET_CHAIN_ID = 1612
export const ANVIL_CHAIN_ID = 31337

/** Any case in, checksummed out. */
export const AddressSchema = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/)
  .describe('a 0x-prefixed 20-byte address')
  .transform((a) => getAddress(a))

export const RpcUrlSchema = z
  .string()
  .regex(/^(https?|wss?):\/\/\S+$/)
  .describe('an http(s):// or ws(s):// URL')

export const ChainIdSchema = z.int().min(1).max(Number.MAX_SAFE_INTEGER)

/** Other keys are ignored: endpoint files name more contracts than a node needs. */
export const ChainAddressesSchema = z.object({
  token: AddressSchema,
  adapterRegistry: AddressSchema,
  datanetRegistry: AddressSchema,
  settlement: AddressSchema
})
export type ChainAddresses = z.output<typeof ChainAddressesSchema>

/**
 * Seconds between a client's withdrawal request and its withdrawal on the local chain. Settlement
 * refuses a delay under MIN_WITHDRAWAL_DELAY (1 hour): see docs/THREATS.md L1.
 */
export const WithdrawalDelaySchema = z
  .int()
  .min(3600)
  .max(30 * 86400)

const LocalChainSchema = z.object({
  preset: z.literal('local'),
  withdrawalDelaySec: WithdrawalDelaySchema.optional()
})
const TestnetChainSchema = z.object({
  preset: z.literal('testnet'),
  rpcUrl: RpcUrlSchema,
  chainId: z.literal(OPENLEDGER_TESTNET_CHAIN_ID).default(OPENLEDGER_TESTNET_CHAIN_ID),
  addresses: ChainAddressesSchema
})
const CustomChainSchema = z.object({
  preset: z.literal('custom'),
  rpcUrl: RpcUrlSchema,
  chainId: ChainIdSchema,
  addresses: ChainAddressesSchema
})
export const ChainConfigSchema = z.discriminatedUnion('preset', [
  LocalChainSchema,
  TestnetChainSchema,
  CustomChainSchema
])

export interface LocalChainConfig {
  preset: 'local'
  withdrawalDelaySec?: number
}
export interface RemoteChainConfig {
  preset: 'testnet' | 'custom'
  rpcUrl: string
  chainId: number
  addresses: ChainAddresses
}
export type ChainConfig = LocalChainConfig | RemoteChainConfig

/** Where a node or CLI talks to once a chain is up (a local one or a remote one). */
export const ChainEndpointSchema = z.object({
  rpcUrl: RpcUrlSchema,
  chainId: ChainIdSchema,
  addresses: ChainAddressesSchema
})
export type ChainEndpoint = z.output<typeof ChainEndpointSchema>

export const chainConfigError = (issue: SchemaIssue): ChainConfigError =>
  new ChainConfigError(messageOf(issue), { key: issue.field, value: issue.value, allowed: issue.allowed })

/** Validates a `chain` config: {preset:'local'}, {preset:'testnet', rpcUrl, addresses}, or
 * {rpcUrl, chainId, addresses} (preset absent: custom when rpcUrl is set, else local). */
export function parseChainConfig(x: unknown, key = 'chain'): ChainConfig {
  if (x == null) return { preset: 'local' }
  let input = x
  if (typeof x === 'object' && !Array.isArray(x)) {
    const o = x as Record<string, unknown>
    input = { ...o, preset: o.preset ?? (o.rpcUrl != null ? 'custom' : 'local') }
  }
  const c = parseWith(ChainConfigSchema, input, { at: key, error: chainConfigError })
  return c.preset === 'local' ? { preset: 'local', withdrawalDelaySec: c.withdrawalDelaySec } : c
}

/** Validates an endpoint file (what `openlora chain local` writes). */
export function parseChainEndpoint(x: unknown, key = 'chain'): ChainEndpoint {
  return parseWith(ChainEndpointSchema, x, { at: key, error: chainConfigError })
}
