// The node's configuration: one zod schema per section states each key's type, limits and
// default, and NodeConfig is derived from it. Layers built later add their own sections through
// src/node/extensions.ts (a schema whose parse of {} gives its defaults), so one validator covers
// the whole file. config/default.json is the same defaults written out (a unit test keeps them
// equal); `openlora config schema` prints the JSON Schema.
import { OpenLoraError } from '../../common/errors.ts'
import { LOG_LEVELS, type LogLevel } from '../../common/log.ts'
import { parseWith, type SchemaIssue, show, uint, z } from '../../common/schema.ts'
import type { NodeConfig } from '../../common/service.ts'
import * as A from '../../protocols/adapter-exchange/constants.ts'
import { MAX_TTL_MS } from '../../protocols/adverts/constants.ts'
import * as D from '../../protocols/datanet-exchange/constants.ts'

export class ConfigError extends OpenLoraError<'INVALID_CONFIG'> {
  /** `rule`: a cross-key rule the value broke, said instead of "allowed: …" */
  constructor(key: string, value: unknown, allowed: string, source?: string, rule?: string) {
    super(
      'INVALID_CONFIG',
      `config key "${key}"${source ? ` (from ${source})` : ''} has value ${value === undefined ? '(missing)' : show(value)}; ${rule ?? `allowed: ${allowed}`}`,
      { key, value, allowed, source, ...(rule ? { rule } : {}) }
    )
  }

  static of(issue: SchemaIssue): ConfigError {
    const rule = issue.problem === issue.allowed ? issue.problem : undefined
    return new ConfigError(issue.field, issue.value, issue.allowed, issue.source, rule)
  }
}

const MULTIADDR = /^\/(ip4|ip6|dns|dns4|dns6)\/[^/\s]+\/(tcp|udp)\/\d{1,5}(\/[^\s]*)?$/
const P2P_ADDR = /^\/(ip4|ip6|dns|dns4|dns6)\/[^/\s]+\/tcp\/\d{1,5}(\/ws|\/wss)?\/p2p\/[1-9A-HJ-NP-Za-km-z]+$/

const multiaddrs = (max: number, example: string) =>
  z.array(z.string().regex(MULTIADDR).describe(`a multiaddr like ${example}`)).max(max)

/** Per-peer request rate and concurrency caps of a served protocol, with its defaults. */
const serveLimits = (d: {
  requestsPerSecondPerPeer: number
  requestBurstPerPeer: number
  maxConcurrentPerPeer: number
  maxConcurrent: number
}) => ({
  requestsPerSecondPerPeer: z.int().min(1).max(100_000).default(d.requestsPerSecondPerPeer),
  requestBurstPerPeer: z.int().min(1).max(100_000).default(d.requestBurstPerPeer),
  maxConcurrentPerPeer: z.int().min(1).max(10_000).default(d.maxConcurrentPerPeer),
  maxConcurrent: z.int().min(1).max(10_000).default(d.maxConcurrent)
})

/** The node's own sections. Every key has its default here and nowhere else. */
export const coreShape = {
  dataDir: z.string().min(1).default('./.openlora').describe('a directory path'),
  log: z
    .strictObject({
      level: z.enum(LOG_LEVELS as unknown as [LogLevel, ...LogLevel[]]).default('info'),
      format: z.enum(['auto', 'json', 'pretty']).default('auto')
    })
    .prefault({}),
  network: z
    .strictObject({
      listen: multiaddrs(16, '/ip4/0.0.0.0/tcp/4010').default([
        '/ip4/0.0.0.0/tcp/4010',
        '/ip4/0.0.0.0/tcp/4011/ws'
      ]),
      announce: multiaddrs(8, '/dns4/my.host/tcp/4010').default([]),
      bootstrap: z
        .array(
          z
            .string()
            .regex(P2P_ADDR)
            .describe('a multiaddr ending in /p2p/<peer id>, like /ip4/1.2.3.4/tcp/4010/p2p/12D3Koo…')
        )
        .max(64)
        .default([]),
      mdns: z.boolean().default(true),
      maxConnections: z.int().min(1).max(10_000).default(100),
      /** below this many connections the node dials peers it learns from adverts */
      targetPeers: z.int().min(0).max(1_000).default(8),
      dialTimeoutMs: z.int().min(100).max(120_000).default(10_000),
      /** ask the home router for a port mapping (UPnP / NAT-PMP); off unless asked for */
      upnp: z.boolean().default(false),
      /** Kademlia DHT mode: auto = server once AutoNAT confirms a public address, else client */
      dht: z.enum(['auto', 'server', 'client', 'off']).default('auto'),
      relay: z
        .strictObject({
          /** serve as a circuit relay v2 for nodes behind NAT (`--relay-server`) */
          server: z.boolean().default(false),
          maxReservations: z.int().min(1).max(10_000).default(128),
          /** bytes one relayed connection may carry, in MiB (libp2p's default, 128 KiB, cuts jobs) */
          dataLimitMb: z.int().min(1).max(65_536).default(256),
          /** how long one relayed connection may stay open */
          durationLimitS: z.int().min(10).max(86_400).default(3600),
          reservationTtlS: z.int().min(60).max(86_400).default(7200),
          /** how often a node behind NAT checks it still holds a reservation */
          keeperIntervalMs: z.int().min(100).max(600_000).default(5000)
        })
        .prefault({})
    })
    .prefault({}),
  admin: z
    .strictObject({
      enabled: z.boolean().default(true),
      // loopback only: the admin endpoint has no authentication
      host: z.enum(['127.0.0.1', '::1', 'localhost']).default('127.0.0.1'),
      port: z.int().min(0).max(65_535).default(0)
    })
    .prefault({}),
  adverts: z
    .strictObject({
      heartbeatMs: z
        .int()
        .min(100)
        .max(MAX_TTL_MS / 2)
        .default(30_000),
      ttlMs: z.int().min(1_000).max(MAX_TTL_MS).default(120_000),
      debounceMs: z.int().min(0).max(60_000).default(250),
      adapterListLimit: z.int().min(0).max(256).default(64)
    })
    .prefault({}),
  hardware: z
    .strictObject({
      detect: z.boolean().default(true),
      /** null: detect; a list: use it instead (tests, or a GPU nvidia-smi cannot see) */
      gpus: z
        .array(z.strictObject({ name: z.string().max(256), memoryMb: uint(), driver: z.string().max(256) }))
        .max(16)
        .nullable()
        .default(null)
    })
    .prefault({}),
  // What this node serves to and accepts from peers over the adapter and datanet exchanges: the
  // defaults and their reasons are the protocols' constants (docs/PROTOCOL.md); a node on a fat
  // link may raise the rates, a small one lower the concurrency.
  exchange: z
    .strictObject({
      adapter: z
        .strictObject({
          /** largest adapter this node fetches (a peer's manifest naming more is refused) */
          maxAdapterMb: z
            .int()
            .min(1)
            .max(65_536)
            .default(A.DEFAULT_MAX_ADAPTER_BYTES / 2 ** 20),
          fetchTimeoutMs: z.int().min(1_000).max(3_600_000).default(A.FETCH_TIMEOUT_MS),
          ...serveLimits(A.ADAPTER_SERVE_LIMITS)
        })
        .prefault({}),
      datanet: z
        .strictObject({
          /** largest version bundle (the contribution list) this node sends or accepts */
          maxBundleMb: z
            .int()
            .min(1)
            .max(1_024)
            .default(D.MAX_BUNDLE_FRAME_BYTES / 2 ** 20),
          fetchTimeoutMs: z.int().min(1_000).max(3_600_000).default(D.DATANET_FETCH_TIMEOUT_MS),
          /** bundle exports at once (each holds its bundle in memory until written) */
          maxConcurrentExports: z.int().min(1).max(64).default(D.MAX_CONCURRENT_EXPORTS),
          ...serveLimits(D.DATANET_SERVE_LIMITS)
        })
        .prefault({})
    })
    .prefault({}),
  pricing: z
    .strictObject({
      pricePer1kTokens: z
        .string()
        .regex(/^(0|[1-9][0-9]{0,77})$/)
        .default('0')
        .describe('wei per 1k tokens, a decimal string')
    })
    .prefault({})
}

const coreSchema = z.strictObject(coreShape)
export type CoreConfig = z.output<typeof coreSchema>

export type { NodeConfig }

// The node's own sections of the config every layer sees (src/common/service.ts NodeConfig);
// extensions merge in theirs the same way.
declare module '../../common/service.ts' {
  interface NodeConfig extends CoreConfig {}
}

/** The whole config's schema: the core sections plus the given extension sections. */
export function configSchema(sections: Record<string, z.ZodType> = {}): z.ZodObject {
  const shape: Record<string, z.ZodType> = { ...coreShape }
  for (const [k, s] of Object.entries(sections)) shape[k] = s.prefault({})
  return z.strictObject(shape)
}

/** Validates a whole merged config; a failure is a ConfigError naming the key. */
export function validateConfig(schema: z.ZodType, config: unknown, source?: string): NodeConfig {
  return parseWith(schema, config, { ...(source ? { source } : {}), error: ConfigError.of }) as NodeConfig
}
