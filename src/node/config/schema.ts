// The node's configuration: its type, the rules each key obeys, and validation whose errors name
// the key, the value and what is allowed. Layers built later add their own sections through
// src/node/extensions.ts (a spec plus defaults), so one validator covers the whole file.
import type { Spec } from '../../common/config-spec.ts'
import { OpenLoraError } from '../../common/errors.ts'
import { LOG_LEVELS, type LogLevel } from '../../common/log.ts'
import type { NodeConfig } from '../../common/service.ts'
import { MAX_TTL_MS } from '../../protocols/adverts/constants.ts'
import type { GpuInfo } from '../../serving/capability.ts'

export type { NodeConfig }

// The node's own sections of the config every layer sees (src/common/service.ts NodeConfig).
declare module '../../common/service.ts' {
  interface NodeConfig {
    log: { level: LogLevel; format: 'auto' | 'json' | 'pretty' }
    network: {
      listen: string[]
      announce: string[]
      bootstrap: string[]
      mdns: boolean
      maxConnections: number
      /** below this many connections the node dials peers it learns from adverts */
      targetPeers: number
      dialTimeoutMs: number
      /** ask the home router for a port mapping (UPnP / NAT-PMP); off unless asked for */
      upnp: boolean
      /** Kademlia DHT mode: auto = server once AutoNAT confirms a public address, else client */
      dht: 'auto' | 'server' | 'client' | 'off'
      relay: {
        /** serve as a circuit relay v2 for nodes behind NAT (`--relay-server`) */
        server: boolean
        maxReservations: number
        /** bytes one relayed connection may carry, in MiB (libp2p's default, 128 KiB, cuts jobs) */
        dataLimitMb: number
        /** how long one relayed connection may stay open */
        durationLimitS: number
        reservationTtlS: number
        /** how often a node behind NAT checks it still holds a reservation */
        keeperIntervalMs: number
      }
    }
    admin: { enabled: boolean; host: string; port: number }
    adverts: { heartbeatMs: number; ttlMs: number; debounceMs: number; adapterListLimit: number }
    hardware: { detect: boolean; gpus: GpuInfo[] | null }
    pricing: { pricePer1kTokens: string }
  }
}

export type { Spec }

export class ConfigError extends OpenLoraError<'INVALID_CONFIG'> {
  constructor(key: string, value: unknown, allowed: string, source?: string) {
    const shown = JSON.stringify(value)?.slice(0, 200) ?? String(value)
    super(
      'INVALID_CONFIG',
      `config key "${key}"${source ? ` (from ${source})` : ''} has value ${shown}; allowed: ${allowed}`,
      { key, value, allowed, source }
    )
  }
}

const MULTIADDR = /^\/(ip4|ip6|dns|dns4|dns6)\/[^/\s]+\/(tcp|udp)\/\d{1,5}(\/[^\s]*)?$/
const P2P_ADDR = /^\/(ip4|ip6|dns|dns4|dns6)\/[^/\s]+\/tcp\/\d{1,5}(\/ws|\/wss)?\/p2p\/[1-9A-HJ-NP-Za-km-z]+$/

function checkGpus(v: unknown): string | null {
  if (v === null) return null
  if (!Array.isArray(v) || v.length > 16) return 'not an array of at most 16 GPUs'
  for (const g of v) {
    if (g == null || typeof g !== 'object') return 'an entry is not an object'
    const o = g as Record<string, unknown>
    if (typeof o.name !== 'string' || typeof o.driver !== 'string') return 'name and driver must be strings'
    if (!Number.isSafeInteger(o.memoryMb) || (o.memoryMb as number) < 0) return 'memoryMb must be an integer'
    if (Object.keys(o).some((k) => !['name', 'memoryMb', 'driver'].includes(k))) return 'unknown GPU field'
  }
  return null
}

/** The node's own sections. */
export const coreSpec: Record<string, Spec> = {
  dataDir: { type: 'string', pattern: /^.+$/, hint: 'a directory path' },
  log: {
    type: 'section',
    fields: {
      level: { type: 'string', enum: LOG_LEVELS },
      format: { type: 'string', enum: ['auto', 'json', 'pretty'] }
    }
  },
  network: {
    type: 'section',
    fields: {
      listen: {
        type: 'strings',
        pattern: MULTIADDR,
        maxItems: 16,
        hint: 'multiaddrs like /ip4/0.0.0.0/tcp/4010'
      },
      announce: {
        type: 'strings',
        pattern: MULTIADDR,
        maxItems: 8,
        hint: 'multiaddrs like /dns4/my.host/tcp/4010'
      },
      bootstrap: {
        type: 'strings',
        pattern: P2P_ADDR,
        maxItems: 64,
        hint: 'multiaddrs ending in /p2p/<peer id>, like /ip4/1.2.3.4/tcp/4010/p2p/12D3Koo…'
      },
      mdns: { type: 'bool' },
      maxConnections: { type: 'int', min: 1, max: 10_000 },
      targetPeers: { type: 'int', min: 0, max: 1_000 },
      dialTimeoutMs: { type: 'int', min: 100, max: 120_000 },
      upnp: { type: 'bool' },
      dht: { type: 'string', enum: ['auto', 'server', 'client', 'off'] },
      relay: {
        type: 'section',
        fields: {
          server: { type: 'bool' },
          maxReservations: { type: 'int', min: 1, max: 10_000 },
          dataLimitMb: { type: 'int', min: 1, max: 65_536 },
          durationLimitS: { type: 'int', min: 10, max: 86_400 },
          reservationTtlS: { type: 'int', min: 60, max: 86_400 },
          keeperIntervalMs: { type: 'int', min: 100, max: 600_000 }
        }
      }
    }
  },
  admin: {
    type: 'section',
    fields: {
      enabled: { type: 'bool' },
      host: { type: 'string', enum: ['127.0.0.1', '::1', 'localhost'] },
      port: { type: 'int', min: 0, max: 65_535 }
    }
  },
  adverts: {
    type: 'section',
    fields: {
      heartbeatMs: { type: 'int', min: 100, max: MAX_TTL_MS / 2 },
      ttlMs: { type: 'int', min: 1_000, max: MAX_TTL_MS },
      debounceMs: { type: 'int', min: 0, max: 60_000 },
      adapterListLimit: { type: 'int', min: 0, max: 256 }
    }
  },
  hardware: {
    type: 'section',
    fields: {
      detect: { type: 'bool' },
      gpus: { type: 'json', check: checkGpus, hint: 'null or [{"name","memoryMb","driver"}]' }
    }
  },
  pricing: {
    type: 'section',
    fields: {
      pricePer1kTokens: {
        type: 'string',
        pattern: /^(0|[1-9][0-9]{0,77})$/,
        hint: 'wei per 1k tokens, decimal'
      }
    }
  }
}

function describe(spec: Spec): string {
  switch (spec.type) {
    case 'string':
      return spec.enum ? spec.enum.map((e) => `"${e}"`).join(', ') : (spec.hint ?? 'a string')
    case 'int':
      return `an integer${spec.min !== undefined ? ` >= ${spec.min}` : ''}${spec.max !== undefined ? ` and <= ${spec.max}` : ''}`
    case 'bool':
      return 'true or false'
    case 'strings':
      return `a list of ${spec.hint ?? 'strings'}${spec.maxItems ? ` (at most ${spec.maxItems})` : ''}`
    case 'json':
      return spec.hint
    case 'section':
      return `a section with keys ${Object.keys(spec.fields).join(', ')}`
  }
}

/** Checks one value against its spec; throws ConfigError naming the key. */
export function checkValue(key: string, spec: Spec, v: unknown, source?: string): void {
  const bad = (): never => {
    throw new ConfigError(key, v, describe(spec), source)
  }
  switch (spec.type) {
    case 'string':
      if (typeof v !== 'string') bad()
      if (spec.enum && !spec.enum.includes(v as string)) bad()
      if (spec.pattern && !spec.pattern.test(v as string)) bad()
      return
    case 'int':
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) bad()
      if (
        (spec.min !== undefined && (v as number) < spec.min) ||
        (spec.max !== undefined && (v as number) > spec.max)
      )
        bad()
      return
    case 'bool':
      if (typeof v !== 'boolean') bad()
      return
    case 'strings':
      if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) bad()
      if (spec.maxItems !== undefined && (v as string[]).length > spec.maxItems) bad()
      for (const s of v as string[]) if (spec.pattern && !spec.pattern.test(s)) bad()
      return
    case 'json': {
      const why = spec.check(v)
      if (why !== null) throw new ConfigError(key, v, `${spec.hint} (${why})`, source)
      return
    }
    case 'section': {
      if (v == null || typeof v !== 'object' || Array.isArray(v)) bad()
      const o = v as Record<string, unknown>
      for (const k of Object.keys(o)) {
        if (!(k in spec.fields))
          throw new ConfigError(
            `${key}.${k}`,
            o[k],
            `one of the keys ${Object.keys(spec.fields).join(', ')}`,
            source
          )
      }
      for (const [k, s] of Object.entries(spec.fields)) {
        if (!(k in o)) throw new ConfigError(`${key}.${k}`, undefined, describe(s), source)
        checkValue(`${key}.${k}`, s, o[k], source)
      }
    }
  }
}

/** Validates a whole merged config against the given top-level specs. */
export function validateConfig(config: Record<string, unknown>, specs: Record<string, Spec>): NodeConfig {
  for (const k of Object.keys(config)) {
    if (!(k in specs))
      throw new ConfigError(k, config[k], `a known section: ${Object.keys(specs).join(', ')}`)
  }
  for (const [k, s] of Object.entries(specs)) {
    if (!(k in config)) throw new ConfigError(k, undefined, describe(s))
    checkValue(k, s, config[k])
  }
  return config as NodeConfig
}
