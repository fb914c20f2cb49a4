// The composition root: builds the node's parts from one validated config and wires them by
// injection. Order of start: libp2p host → peer table → extension services → adverts → dialer →
// admin endpoint; stop runs the same list backwards, then closes the DB and releases the lock.
import { peerIdFromString } from '@libp2p/peer-id'
import type { Level } from 'level'
import { createLogger, type Logger } from '../common/log.ts'
import type { NodeComponents, NodeExtension, Service, ServiceFactory } from '../common/service.ts'
import { settleWithin } from '../common/stop.ts'
import { NodeMetrics } from '../metrics/registry.ts'
import { AdvertService } from '../protocols/adverts/adverts.ts'
import { PeerTable } from '../protocols/adverts/peer-table.ts'
import { bannedPeerGater, PeerScores } from '../protocols/shared/peer-score.ts'
import { type CapabilitySource, emptyCapabilities, StaticCapabilitySource } from '../serving/capability.ts'
import { AdminServer } from './admin.ts'
import { registerCoreRoutes } from './admin-routes.ts'
import { SwitchableCapabilities } from './capabilities.ts'
import type { NodeConfig } from './config/schema.ts'
import { openDataDir } from './datadir.ts'
import { openNodeDb } from './db.ts'
import { AdvertDialer } from './dialer.ts'
import { extensions as registeredExtensions } from './extensions.ts'
import { detectHardware } from './hardware.ts'
import { advertisedAddrs, createHost, type Host } from './host.ts'
import { loadIdentity } from './identity.ts'
import { wireNodeMetrics } from './metrics.ts'
import { ProviderPublisher } from './providers.ts'
import { NODE_VERSION } from './version.ts'

/** Each stop step gets at most this long, and all of them together STOP_BUDGET_MS, so SIGINT
 * always ends the process inside 5 s even when a step (a peer that never closes) hangs. */
const STOP_STEP_TIMEOUT_MS = 1_500
const STOP_BUDGET_MS = 4_000

export interface NodeOverrides {
  logger?: Logger
  /** replaces the hardware-only capability source (the engine's, or a test's) */
  capabilities?: CapabilitySource
  /** extra services, built after those of the extensions */
  services?: Record<string, ServiceFactory>
  /** extensions to use instead of the registered ones (src/node/extensions.ts) */
  extensions?: NodeExtension[]
}

export interface OpenLoraNode extends NodeComponents {
  /** the node's own host, with the services it configures (pubsub, identify, ping) */
  libp2p: Host
  admin: AdminServer
  readonly peerId: string
  start(): Promise<void>
  stop(): Promise<void>
}

async function withTimeout(p: Promise<unknown>, ms: number, what: string, log: Logger): Promise<void> {
  await settleWithin(p, ms, (outcome, err) =>
    outcome === 'failed'
      ? log.warn('stop step failed', { step: what, err })
      : log.warn('stop step timed out; continuing', { step: what, ms })
  )
}

export async function createNode(config: NodeConfig, overrides: NodeOverrides = {}): Promise<OpenLoraNode> {
  const baseLog =
    overrides.logger ??
    createLogger('node', {
      level: config.log.level,
      json: config.log.format === 'auto' ? undefined : config.log.format === 'json'
    })
  const dataDir = openDataDir(config.dataDir)
  let db: Level<string, Uint8Array> | undefined
  try {
    const identity = await loadIdentity(dataDir.keysDir, baseLog)
    const log = baseLog.child(identity.peerId.toString().slice(-8))
    // a corrupt or locked database stops the node with the recovery command, never a fresh start
    db = await openNodeDb(dataDir.dbDir, dataDir.path)
    // one score per peer for every request/response protocol; a ban hangs up on the peer and the
    // connection gater keeps it out (both ways) until the ban lifts
    let hangUp: (peer: string) => void = () => {}
    const peerScores = new PeerScores({ onBan: (peer) => hangUp(peer) })
    const libp2p = await createHost(config, identity.privateKey, bannedPeerGater(peerScores))
    hangUp = (peer) => {
      log.warn('peer banned', { peer })
      // the protocol that banned it closes that connection after its answer; a second later every
      // other connection to the peer goes too (the gater already refuses new ones)
      setTimeout(() => void libp2p.hangUp(peerIdFromString(peer)).catch(() => {}), 1_000).unref()
    }
    const peerTable = new PeerTable({
      store: db.sublevel<string, Uint8Array>('peers', { valueEncoding: 'view' }),
      logger: log.child('peer-table')
    })
    const hardware = await detectHardware(config.hardware)
    const capabilities = new SwitchableCapabilities(
      overrides.capabilities ??
        new StaticCapabilitySource(emptyCapabilities(hardware, config.pricing.pricePer1kTokens))
    )
    const adverts = new AdvertService(
      {
        peerId: identity.peerId,
        privateKey: identity.privateKey,
        pubsub: libp2p.services.pubsub,
        peerTable,
        capabilities,
        operator: { address: identity.operator.address, signature: identity.operator.bindingSignature },
        addresses: () => advertisedAddrs(libp2p, config),
        reachability: () => libp2p.services.relayKeeper.reachability(),
        logger: log,
        libp2p
      },
      { ...config.adverts, version: NODE_VERSION }
    )
    const admin = new AdminServer(dataDir.path, log)
    // one registry for every layer; GET /metrics on the admin and gateway ports (docs/METRICS.md)
    const metrics = new NodeMetrics()
    const dialer = new AdvertDialer(
      libp2p,
      peerTable,
      {
        targetPeers: config.network.targetPeers,
        bootstrap: config.network.bootstrap,
        dialTimeoutMs: config.network.dialTimeoutMs
      },
      log
    )
    const components: NodeComponents & { libp2p: Host; admin: AdminServer } = {
      config,
      logger: log,
      dataDir,
      identity,
      libp2p,
      db,
      peerTable,
      adverts,
      capabilities,
      peerScores,
      admin,
      metrics,
      services: {}
    }
    const factories: Array<[string, ServiceFactory<Service>]> = []
    for (const ext of overrides.extensions ?? registeredExtensions)
      for (const [name, factory] of Object.entries(ext.services?.(config) ?? {}))
        if (factory) factories.push([name, factory])
    factories.push(...Object.entries(overrides.services ?? {}))
    for (const [name, factory] of factories) components.services[name] = await factory(components)

    const providers = new ProviderPublisher(
      libp2p,
      capabilities,
      () => {
        try {
          return components.services.attribution?.store
        } catch {
          return undefined // configured but not started
        }
      },
      log
    )
    const steps: Array<{ name: string; start: () => unknown; stop: () => unknown }> = [
      { name: 'libp2p', start: () => libp2p.start(), stop: () => libp2p.stop() },
      { name: 'peer-table', start: () => peerTable.start(), stop: () => peerTable.stop() },
      ...Object.entries(components.services).map(([name, s]) => ({
        name,
        start: () => s?.start?.(),
        stop: () => s?.stop?.()
      })),
      { name: 'adverts', start: () => adverts.start(), stop: () => adverts.stop() },
      { name: 'providers', start: () => providers.start(), stop: () => providers.stop() },
      { name: 'dialer', start: () => dialer.start(), stop: () => dialer.stop() },
      {
        name: 'admin',
        start: () => (config.admin.enabled ? admin.start(config.admin.host, config.admin.port) : undefined),
        stop: () => admin.stop()
      }
    ]
    registerCoreRoutes(components, libp2p)
    wireNodeMetrics(components, admin)
    // A reservation made or lost, or an address AutoNAT confirmed, changes how peers reach us:
    // say so once, and re-advertise at once instead of at the next heartbeat.
    let reachability = libp2p.services.relayKeeper.reachability()
    libp2p.addEventListener('self:peer:update', () => {
      const now = libp2p.services.relayKeeper.reachability()
      if (now !== reachability)
        log.info('reachability changed', {
          from: reachability,
          to: now,
          relays: libp2p.services.relayKeeper.relays()
        })
      reachability = now
      adverts.schedulePublish()
    })
    let started = 0
    let stopping: Promise<void> | undefined
    const openDb = db

    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        const deadline = Date.now() + STOP_BUDGET_MS
        const budget = (): number => Math.max(100, Math.min(STOP_STEP_TIMEOUT_MS, deadline - Date.now()))
        for (const step of steps.slice(0, started).reverse())
          await withTimeout(Promise.resolve().then(step.stop), budget(), step.name, log)
        started = 0
        await withTimeout(openDb.close(), budget(), 'db', log)
        dataDir.release()
        log.info('node stopped')
      })()
      return stopping
    }

    return Object.assign(components, {
      peerId: identity.peerId.toString(),
      async start() {
        try {
          for (const step of steps) {
            await step.start()
            started++
          }
        } catch (err) {
          await stop()
          throw err
        }
        log.info('node started', {
          peer: identity.peerId.toString(),
          operator: identity.operator.address,
          addrs: libp2p.getMultiaddrs().map((m) => m.toString()),
          admin: admin.url
        })
      },
      stop
    })
  } catch (err) {
    await db?.close().catch(() => {})
    dataDir.release()
    throw err
  }
}
