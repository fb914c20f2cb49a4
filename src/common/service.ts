// The seam every layer plugs into the node through (js-libp2p style: a factory gets the
// components it needs at composition time). It sits at the bottom so that no layer imports
// src/node/: the composition root builds NodeComponents and runs each NodeExtension's services.
//
// Typed look-ups without casts: each layer adds what it contributes by declaration merging,
//   declare module '../common/service.ts' {
//     interface Services { chain: ChainService }          // components.services.chain
//     interface NodeConfig { chain?: NodeChainConfig }     // components.config.chain
//   }
// so `components.services.chain` is `ChainService | undefined` (undefined: the extension is off
// or built later) and no caller names a type by string. docs/ARCHITECTURE.md ("Seams").
import type { Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import type { Level } from 'level'
import type { PrivateKeyAccount } from 'viem/accounts'
import type { Logger } from './log.ts'
import type { z } from './schema.ts'

/** What the node starts in order and stops in reverse. */
export interface Service {
  start?(): void | Promise<void>
  stop?(): void | Promise<void>
}

/** Name → type of every service an extension may build; each layer merges its own in. */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging in each layer
export interface Services {}

/** The services built so far: typed for the known names, any other name (a test's) a Service. */
export type ServiceMap = { [K in keyof Services]?: Services[K] } & { [name: string]: Service | undefined }

/**
 * The validated config. The node merges in its core sections (src/node/config/schema.ts), each
 * extension its own section; sections nobody declared are still reachable as unknown.
 */
export interface NodeConfig {
  dataDir: string
  [section: string]: unknown
}

export interface DataDir {
  path: string
  keysDir: string
  dbDir: string
  file(name: string): string
  release(): void
}

export interface NodeIdentity {
  privateKey: PrivateKey
  peerId: PeerId
  operator: {
    address: `0x${string}`
    account: PrivateKeyAccount
    /** EIP-191 signature binding `address` to `peerId` (operatorBindingMessage) */
    bindingSignature: Uint8Array
  }
}

export type AdminHandler = (query: URLSearchParams) => unknown | Promise<unknown>
/** What a long action may tell its caller while it runs (src/node/admin.ts streams it). */
export interface AdminActionContext {
  /**
   * One progress event (a small JSON object, e.g. bytes received of a total). A caller that
   * asked for a stream gets it as an NDJSON line (at most ~10 a second; the latest is always
   * sent before the answer); for any other caller it is dropped.
   */
  progress(event: Record<string, unknown>): void
}
/** Runs a command; its OpenLoraErrors (bad input: a code and a message) answer 400, others 500. */
export type AdminAction = (body: unknown, ctx: AdminActionContext) => unknown | Promise<unknown>

/** The node's local admin endpoint, as services see it: they add routes and actions. */
export interface AdminRoutes {
  /** Adds GET /<path> answering the handler's JSON. */
  route(path: string, handler: AdminHandler): void
  /** Adds POST /<path> with a small JSON body, answered with the handler's JSON. */
  action(path: string, handler: AdminAction): void
}

/**
 * What a service factory gets. Layers above common merge in the components they own (the
 * adverts layer: peerTable, adverts; serving: capabilities).
 */
export interface NodeComponents {
  config: NodeConfig
  logger: Logger
  dataDir: DataDir
  identity: NodeIdentity
  libp2p: Libp2p
  /** the node's LevelDB; services keep their state in their own sublevel */
  db: Level<string, Uint8Array>
  admin: AdminRoutes
  /** services built before this one */
  services: ServiceMap
}

export type ServiceFactory<S = Service> = (components: NodeComponents) => S | Promise<S>

/** An extension's factories, by the name its service gets in `components.services`. */
export type ServiceFactories = { [K in keyof Services]?: ServiceFactory<Services[K]> }

export interface ConfigSection {
  /** a zod schema of the section whose parse of {} gives its defaults (every key has one) */
  schema: z.ZodType
}

/** How a layer joins the node: a config section (its schema holds the defaults), and services built from config. */
export interface NodeExtension {
  name: string
  config?: Record<string, ConfigSection>
  services?: (config: NodeConfig) => ServiceFactories
}

/** A service the caller cannot work without: absent, it throws naming the service. */
export function requireService<K extends keyof Services>(services: ServiceMap, name: K): Services[K] {
  const s = services[name]
  if (s === undefined)
    throw new Error(`the node runs no ${String(name)} service (is its extension registered?)`)
  return s as Services[K]
}
