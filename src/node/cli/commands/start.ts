// `openlora start`: runs a node until SIGINT/SIGTERM. When the node is up it prints one JSON line
// on stdout ({"event":"started",…}) so scripts (the swarm launcher) can read its addresses.
// `--demo` (what `npm start` runs) starts on embedded defaults instead: a local chain, a DEMO
// model and adapter when none is configured (src/node/demo.ts), and a short human banner.
import { createLogger } from '../../../common/log.ts'
import type { Command } from '../../cli/command.ts'
import { UsageError } from '../../cli/command.ts'
import type { Override } from '../../config/load.ts'
import { DEMO_CONFIG_BASE, type DemoInfo, demoBanner, finishDemo, prepareDemo } from '../../demo.ts'
import { createNode, type OpenLoraNode } from '../../node.ts'
import { configFromFlags, configOptions } from './shared.ts'

export const startCommand: Command = {
  name: 'start',
  summary: 'run a node (libp2p host, capability adverts, admin endpoint) until Ctrl-C',
  options: {
    ...configOptions,
    listen: {
      type: 'string',
      multiple: true,
      description: 'listen multiaddr (replaces the defaults)',
      valueName: 'ADDR'
    },
    port: {
      type: 'string',
      description: 'listen on TCP PORT and WebSockets PORT+1 on all interfaces',
      valueName: 'PORT'
    },
    announce: {
      type: 'string',
      multiple: true,
      description: 'address to announce (behind NAT)',
      valueName: 'ADDR'
    },
    bootstrap: {
      type: 'string',
      multiple: true,
      description: 'peer to join through (/…/p2p/<id>)',
      valueName: 'ADDR'
    },
    'gateway-port': {
      type: 'string',
      description: 'port of the OpenAI-compatible HTTP gateway (config gateway.port; 0 = a free port)',
      valueName: 'PORT'
    },
    'no-mdns': { type: 'boolean', description: 'turn LAN discovery (mDNS) off' },
    'relay-server': {
      type: 'boolean',
      description:
        'relay for nodes behind NAT (circuit relay v2; limits under network.relay); run it where the node is publicly reachable, with --announce PUBLIC_ADDR'
    },
    demo: {
      type: 'boolean',
      description:
        'embedded defaults (npm start): local anvil chain, a DEMO random-weight model and adapter when no model is configured, a banner with the command to send a job'
    },
    'log-level': {
      type: 'string',
      description: 'trace | debug | info | warn | error | silent',
      valueName: 'LEVEL'
    }
  },
  async run({ values }) {
    // The signal handlers go in before anything else: a Ctrl-C (or the swarm's SIGTERM) that
    // lands while the node is still opening its data dir or starting its services must stop it
    // cleanly too, not kill it with its lock and admin file left behind.
    let node: OpenLoraNode | undefined
    let up: Promise<void> | undefined
    let pending: string | undefined
    let creating = false
    let starting = false
    let stopNow: (sig: string) => void = (sig) => {
      // before the data dir is opened there is nothing to release: exit as the default action would
      if (!creating) process.exit(130)
      pending ??= sig
    }
    let signals = 0
    const onSignal = (sig: string): void => {
      if (++signals > 1) {
        // A second Ctrl-C means the user will not wait for a clean stop.
        node?.logger.warn('second signal; exiting now', { sig })
        node?.dataDir.release()
        process.exit(130)
      }
      stopNow(sig)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    const extra: Override[] = []
    const listen = (values.listen as string[] | undefined) ?? []
    if (typeof values.port === 'string') {
      const p = Number(values.port)
      if (!Number.isInteger(p) || p < 0 || p > 65534)
        throw new UsageError(`--port must be 0..65534, got ${values.port}`)
      listen.push(`/ip4/0.0.0.0/tcp/${p}`, `/ip4/0.0.0.0/tcp/${p === 0 ? 0 : p + 1}/ws`)
    }
    if (listen.length > 0) extra.push({ key: 'network.listen', value: listen, source: '--listen/--port' })
    if (values.announce) extra.push({ key: 'network.announce', value: values.announce, source: '--announce' })
    if (values.bootstrap)
      extra.push({ key: 'network.bootstrap', value: values.bootstrap, source: '--bootstrap' })
    if (typeof values['gateway-port'] === 'string') {
      const p = Number(values['gateway-port'])
      if (!Number.isInteger(p) || p < 0 || p > 65535)
        throw new UsageError(`--gateway-port must be 0..65535, got ${values['gateway-port']}`)
      extra.push({ key: 'gateway.port', value: p, source: '--gateway-port' })
    }
    if (values['no-mdns'] === true) extra.push({ key: 'network.mdns', value: false, source: '--no-mdns' })
    if (values['relay-server'] === true)
      extra.push({ key: 'network.relay.server', value: true, source: '--relay-server' })
    if (typeof values['log-level'] === 'string')
      extra.push({ key: 'log.level', value: values['log-level'], source: '--log-level' })
    const demo = values.demo === true
    const loaded = configFromFlags(values, extra, demo ? DEMO_CONFIG_BASE : undefined)
    const log = createLogger('start', { level: loaded.log.level })
    const plan = demo ? await prepareDemo(loaded, log) : null
    const config = plan?.config ?? loaded
    creating = true
    const created = await createNode(config)
    node = created
    const stopped = new Promise<void>((resolve) => {
      stopNow = (sig) => {
        const what = starting ? 'stopping once the start settles (a second signal exits now)' : 'stopping'
        created.logger.info(what, { sig })
        // a stop racing the start would skip the steps still starting: let the start settle
        // first (a failed start has already stopped what it started)
        ;(up ?? Promise.resolve())
          .catch(() => {})
          .then(() => created.stop())
          .then(resolve, resolve)
      }
    })
    if (pending !== undefined) {
      stopNow(pending)
      await stopped
      return 0
    }
    up = created.start()
    starting = true
    await up.finally(() => {
      starting = false
    })
    if (signals > 0) {
      // stopped while starting: no banner for a node that is already going away
      await stopped
      return 0
    }
    if (demo) {
      let info: DemoInfo | null = null
      try {
        info = await finishDemo(created, plan, log)
      } catch (err) {
        await created.stop()
        throw err
      }
      process.stdout.write(demoBanner(created, info))
    } else
      process.stdout.write(
        `${JSON.stringify({
          event: 'started',
          peerId: created.peerId,
          operator: created.identity.operator.address,
          addrs: created.libp2p.getMultiaddrs().map((m) => m.toString()),
          // as known at start; AutoNAT and relay reservations settle it within seconds
          // (`openlora peers`, GET /status, and a "reachability changed" log line)
          reachability: created.libp2p.services.relayKeeper.reachability(),
          admin: created.admin.url ?? null,
          gateway: created.services.gateway?.url ?? null,
          dashboard: created.services.gateway?.dashboardUrl ?? null,
          dataDir: config.dataDir,
          pid: process.pid
        })}\n`
      )
    await stopped
    return 0
  }
}
