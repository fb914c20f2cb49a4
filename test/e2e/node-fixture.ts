// Real in-process nodes on 127.0.0.1 (port 0, own temp data dirs, mDNS off), joined through the
// first one, for e2e tests.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, type Override } from '../../src/node/config/load.ts'
import type { NodeConfig } from '../../src/node/config/schema.ts'
import { createNode, type NodeOverrides, type OpenLoraNode } from '../../src/node/node.ts'
import { until } from '../helpers/wait.ts'

export function tempDir(prefix = 'openlora-e2e-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export function testConfig(dataDir: string, extra: Record<string, unknown> = {}): NodeConfig {
  const overrides: Override[] = [
    { key: 'dataDir', value: dataDir, source: 'test' },
    { key: 'network.listen', value: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'], source: 'test' },
    { key: 'network.mdns', value: false, source: 'test' },
    // many nodes per process: each gateway on a free port, not the default 8000
    { key: 'gateway.port', value: 0, source: 'test' },
    { key: 'hardware.detect', value: false, source: 'test' },
    { key: 'adverts.debounceMs', value: 50, source: 'test' },
    { key: 'log.level', value: process.env.OPENLORA_LOG_LEVEL ?? 'warn', source: 'test' },
    ...Object.entries(extra).map(([key, value]) => ({ key, value, source: 'test' }))
  ]
  return loadConfig({ env: {}, overrides })
}

/** The first node's TCP address, for the others to bootstrap from. */
export function tcpAddr(node: OpenLoraNode): string {
  const a = node.libp2p
    .getMultiaddrs()
    .map((m) => m.toString())
    .find((s) => s.includes('/tcp/') && !s.includes('/ws'))
  if (!a) throw new Error('node has no TCP address')
  return a
}

export async function startNode(
  dataDir: string,
  extra: Record<string, unknown> = {},
  overrides: NodeOverrides = {}
): Promise<OpenLoraNode> {
  const node = await createNode(testConfig(dataDir, extra), overrides)
  await node.start()
  return node
}

export interface Swarm {
  nodes: OpenLoraNode[]
  dirs: string[]
  stop(): Promise<void>
}

export async function startSwarm(n: number, extra: Record<string, unknown> = {}): Promise<Swarm> {
  const dirs = Array.from({ length: n }, () => tempDir())
  const nodes: OpenLoraNode[] = []
  nodes.push(await startNode(dirs[0]!, extra))
  const boot = tcpAddr(nodes[0]!)
  for (let i = 1; i < n; i++) nodes.push(await startNode(dirs[i]!, { ...extra, 'network.bootstrap': [boot] }))
  return {
    nodes,
    dirs,
    async stop() {
      await Promise.all(nodes.map((x) => x.stop()))
      for (const d of dirs) rmSync(d, { recursive: true, force: true })
    }
  }
}

export function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  return until(what, cond, timeoutMs)
}

/** Every node's table holds every other node's advert. */
export function converged(nodes: OpenLoraNode[]): boolean {
  return nodes.every((a) => nodes.every((b) => a === b || a.peerTable.get(b.peerId) !== undefined))
}
