// Options shared by the chain commands (deposit, balance, rewards): where the chain is and whose
// key signs. The chain comes from --chain FILE (what `openlora chain local` writes, or a config
// file with a `chain` section), $OPENLORA_CHAIN_FILE (not OPENLORA_CHAIN: the config loader reads
// OPENLORA_<SECTION> as the node's config, so that name would break `openlora start`), or --rpc
// with --settlement (the other addresses are read from the Settlement contract). The key from
// --key-file, $OPENLORA_PRIVATE_KEY, or the node's operator key in --data-dir.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Address, getAddress, type Hex, isAddress, parseUnits } from 'viem'
import { ChainClient, resolveEndpoint } from '../../../chain/client.ts'
import { type ChainEndpoint, parseChainConfig, parseChainEndpoint } from '../../../chain/config.ts'
import { type OptionSpec, UsageError } from '../../cli/command.ts'
import { readSecret } from '../../identity.ts'

export const chainOptions: Record<string, OptionSpec> = {
  chain: {
    type: 'string',
    description:
      'chain endpoint JSON (from `openlora chain local --out`) or a config file with a `chain` section; default $OPENLORA_CHAIN_FILE, else <data-dir>/chain.json of a running node',
    valueName: 'FILE'
  },
  rpc: { type: 'string', description: 'RPC URL (with --settlement, instead of --chain)', valueName: 'URL' },
  settlement: {
    type: 'string',
    description: 'Settlement contract address (with --rpc)',
    valueName: 'ADDRESS'
  },
  'chain-id': { type: 'string', description: 'expected chain id (checked against the RPC)', valueName: 'N' },
  'key-file': {
    type: 'string',
    description:
      'file holding a 0x private key; default $OPENLORA_PRIVATE_KEY or <data-dir>/keys/operator.key',
    valueName: 'FILE'
  },
  'data-dir': {
    type: 'string',
    description: 'node data directory (default ./.openlora or $OPENLORA_HOME)',
    valueName: 'DIR'
  },
  json: { type: 'boolean', description: 'print JSON' }
}

type Values = Record<string, string | boolean | string[] | undefined>

export function dataDirOf(values: Values): string {
  return (values['data-dir'] as string | undefined) ?? process.env.OPENLORA_HOME ?? './.openlora'
}

export async function endpointFromFlags(values: Values): Promise<ChainEndpoint> {
  const chainId = values['chain-id'] != null ? Number(values['chain-id']) : undefined
  if (chainId != null && (!Number.isSafeInteger(chainId) || chainId <= 0))
    throw new UsageError('--chain-id must be a positive integer')
  if (typeof values.rpc === 'string') {
    const s = values.settlement
    if (typeof s !== 'string' || !isAddress(s, { strict: false }))
      throw new UsageError('--rpc needs --settlement ADDRESS')
    return resolveEndpoint(values.rpc, getAddress(s), chainId)
  }
  // last resort: the endpoint a running node with a chain writes into its data dir
  const nodeFile = join(dataDirOf(values), 'chain.json')
  const file =
    (values.chain as string | undefined) ??
    process.env.OPENLORA_CHAIN_FILE ??
    (existsSync(nodeFile) ? nodeFile : undefined)
  if (!file)
    throw new UsageError(
      `say where the chain is: --chain FILE, --rpc URL --settlement ADDRESS, or --data-dir of a running node with a chain (no ${nodeFile})`
    )
  let json: unknown
  try {
    json = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new UsageError(`cannot read chain file ${file}: ${(err as Error).message}`)
  }
  const o = json as Record<string, unknown>
  if (o && typeof o === 'object' && o.chain != null) {
    const cfg = parseChainConfig(o.chain)
    if (cfg.preset === 'local')
      throw new UsageError(
        `${file} has the local preset: the node's own anvil; point --chain at the endpoint file it writes`
      )
    return cfg
  }
  const ep = parseChainEndpoint(json)
  if (chainId != null && ep.chainId !== chainId)
    throw new UsageError(`${file} is for chain ${ep.chainId}, not ${chainId}`)
  return ep
}

export function keyFromFlags(values: Values, required: boolean): Hex | undefined {
  let hex: string | undefined
  // a key file others can read is refused (L5): readSecret says what to do
  if (typeof values['key-file'] === 'string') hex = readSecret(values['key-file']).toString('utf8').trim()
  else if (process.env.OPENLORA_PRIVATE_KEY) hex = process.env.OPENLORA_PRIVATE_KEY.trim()
  else {
    const f = join(dataDirOf(values), 'keys', 'operator.key')
    if (existsSync(f)) hex = readSecret(f).toString('utf8').trim()
  }
  if (hex == null) {
    if (required)
      throw new UsageError('a key is needed: --key-file FILE, $OPENLORA_PRIVATE_KEY, or --data-dir of a node')
    return undefined
  }
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) throw new UsageError('the key must be 0x followed by 64 hex digits')
  return hex as Hex
}

export async function clientFromFlags(values: Values, keyRequired: boolean): Promise<ChainClient> {
  // the key first: a refused key file (L5) fails before any network call
  const account = keyFromFlags(values, keyRequired)
  const endpoint = await endpointFromFlags(values)
  return new ChainClient({ ...endpoint, account })
}

export const nodeOption: Record<string, OptionSpec> = {
  node: {
    type: 'string',
    description:
      "the node operator whose escrow is meant (a client's escrow is per node); default: the operator of the node in --data-dir",
    valueName: 'ADDRESS'
  }
}

/** The node operator an escrow command is about: --node, else the one in <data-dir>/chain.json. */
export function nodeFromFlags(values: Values): Address | undefined {
  const flag = values.node
  if (typeof flag === 'string') {
    if (!isAddress(flag, { strict: false })) throw new UsageError(`--node must be an address, got ${flag}`)
    return getAddress(flag)
  }
  const f = join(dataDirOf(values), 'chain.json')
  if (!existsSync(f)) return undefined
  try {
    const op = (JSON.parse(readFileSync(f, 'utf8')) as { operator?: unknown }).operator
    return typeof op === 'string' && isAddress(op, { strict: false }) ? getAddress(op) : undefined
  } catch {
    return undefined
  }
}

/** The address a command is about: the positional, else the key's address. */
export function subjectAddress(client: ChainClient, positional: string | undefined): Address {
  if (positional != null) {
    if (!isAddress(positional, { strict: false })) throw new UsageError(`not an address: ${positional}`)
    return getAddress(positional)
  }
  if (!client.account)
    throw new UsageError('give an ADDRESS or a key (--key-file, $OPENLORA_PRIVATE_KEY, --data-dir)')
  return client.account.address
}

/** OPEN amounts on the command line are decimal OPEN (18 decimals) unless --wei. */
export function parseOpen(text: string, wei: boolean): bigint {
  try {
    const v = wei ? BigInt(text) : parseUnits(text, 18)
    if (v <= 0n) throw new Error('not positive')
    return v
  } catch {
    throw new UsageError(
      `amount must be a positive ${wei ? 'integer number of wei' : 'decimal number of OPEN'}, got "${text}"`
    )
  }
}

export function formatOpen(wei: bigint): string {
  const neg = wei < 0n
  const a = neg ? -wei : wei
  const whole = a / 10n ** 18n
  const frac = (a % 10n ** 18n).toString().padStart(18, '0').replace(/0+$/, '')
  return `${neg ? '-' : ''}${whole}${frac ? `.${frac}` : ''} OPEN`
}

export function jsonLine(x: unknown): string {
  return JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))
}
