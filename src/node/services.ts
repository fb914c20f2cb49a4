// The shape every node service has (js-libp2p style): a factory takes its options (`init`) and
// returns a function of the components it needs; the node starts services in order and stops
// them in reverse.
import type { Level } from 'level'
import type { Logger } from '../common/log.ts'
import type { AdvertService } from '../protocols/adverts/adverts.ts'
import type { PeerTable } from '../protocols/adverts/peer-table.ts'
import type { CapabilitySource } from '../serving/capability.ts'
import type { AdminServer } from './admin.ts'
import type { NodeConfig } from './config/schema.ts'
import type { DataDir } from './datadir.ts'
import type { Host } from './host.ts'
import type { NodeIdentity } from './identity.ts'

export interface Service {
  start?(): void | Promise<void>
  stop?(): void | Promise<void>
}

/** A capability source the node advertises from; `use()` swaps in a richer one (the engine's). */
export interface NodeCapabilities extends CapabilitySource {
  use(source: CapabilitySource): void
}

export interface NodeComponents {
  config: NodeConfig
  logger: Logger
  dataDir: DataDir
  identity: NodeIdentity
  libp2p: Host
  /** the node's LevelDB; services keep their state in their own sublevel */
  db: Level<string, Uint8Array>
  peerTable: PeerTable
  adverts: AdvertService
  capabilities: NodeCapabilities
  admin: AdminServer
  /** services built before this one, by name */
  services: Record<string, Service>
}

export type ServiceFactory = (components: NodeComponents) => Service | Promise<Service>
