// A small internet inside network namespaces, for the NAT tier and bench:nat.
//
//   inet (bridge br0, 11.11.0.1: the relay / bootstrap node)
//    ├── pub    11.11.0.2                       a publicly reachable node
//    ├── rtrA   11.11.0.10 ─ NAT ─ homeA 10.0.1.2   endpoint-independent (`masquerade`)
//    ├── rtrB   11.11.0.11 ─ NAT ─ homeB 10.0.2.2   endpoint-independent (`masquerade`)
//    └── rtrC   11.11.0.12 ─ NAT ─ homeC 10.0.3.2   symmetric (`masquerade fully-random`)
//   (with `chainHost`) 11.11.0.3: the machine's own namespace, joined to the bridge by one veth, so
//   the test itself reaches anvil (listening there) and every namespace reaches it through its NAT
//
// libp2p ignores private ranges (RFC 1918, 100.64/10, TEST-NETs, 198.18/15) for identify, AutoNAT
// and DCUtR, so the "internet" is 11.11.0.0/24: public-looking, and existing only inside these
// namespaces (no namespace has a route to the machine's real interfaces). Every namespace is
// named `olnat<pid>-…`; a run first removes those of earlier runs whose process is gone.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const INET = '11.11.0'
export const RELAY_IP = `${INET}.1`
export const PUBLIC_IP = `${INET}.2`
/** the address anvil listens on in the machine's own namespace (buildTopology's `chainHost`) */
export const CHAIN_IP = `${INET}.3`

/** `upnp`: endpoint-independent NAT whose router also runs miniupnpd (UPnP IGD + NAT-PMP) */
export type NatKind = 'friendly' | 'symmetric' | 'upnp'

export interface Home {
  name: string
  ns: string
  router: string
  ip: string
  wanIp: string
  nat: NatKind
}

export interface Topology {
  prefix: string
  inet: string
  pub: string
  homes: Home[]
  /** every namespace of this run, for teardown */
  all: string[]
  /** the veth in the machine's own namespace that carries CHAIN_IP, when asked for */
  chainLink?: string
  /** user-space wires (wire.py) of the homes built with `delayMs` */
  wires: ChildProcess[]
}

/** A home to build; with `delayMs` its uplink is a user-space wire adding that delay each way. */
export interface HomeSpec {
  name: string
  nat: NatKind
  delayMs?: number
}

const WIRE = join(import.meta.dirname, 'wire.py')

/**
 * Joins a router to the internet's bridge through wire.py instead of a veth: two TAP devices the
 * wire process opens in this namespace, then moved, one into the router as "wan", one onto br0.
 */
async function wireUplink(t: Topology, router: string, port: string, delayMs: number): Promise<void> {
  const a = `ol${process.pid}${port}a`
  const b = `ol${process.pid}${port}b`
  // stdin stays open: setDelay writes new delays to it
  const child = spawn('python3', [WIRE, a, b, String(delayMs)], { stdio: ['pipe', 'pipe', 'pipe'] })
  t.wires.push(child)
  await new Promise<void>((resolve, reject) => {
    let err = ''
    child.stderr!.on('data', (d) => (err += d))
    child.once('error', (e) => reject(new Error(`wire.py could not start (python3 is needed): ${e.message}`)))
    child.once('exit', (code) => reject(new Error(`wire.py exited with ${code}: ${err}`)))
    child.stdout!.once('data', () => resolve())
  })
  child.removeAllListeners('exit')
  child.unref()
  sh('ip', ['link', 'set', a, 'netns', router])
  inNs(router, 'ip', 'link', 'set', a, 'name', 'wan')
  inNs(router, 'ip', 'link', 'set', 'wan', 'up')
  sh('ip', ['link', 'set', b, 'netns', t.inet])
  inNs(t.inet, 'ip', 'link', 'set', b, 'name', port)
  inNs(t.inet, 'ip', 'link', 'set', port, 'master', 'br0')
  inNs(t.inet, 'ip', 'link', 'set', port, 'up')
}

const PREFIX_BASE = 'olnat'

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

function inNs(ns: string, ...args: string[]): string {
  return sh('ip', ['netns', 'exec', ns, ...args])
}

/** Fails with how to run the tier when the machine cannot build namespaces. */
export function requireNamespaces(): void {
  const problems: string[] = []
  if (process.getuid?.() !== 0) problems.push('it must run as root (network namespaces, nftables)')
  for (const tool of ['ip', 'nft', 'tc'])
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      problems.push(`the "${tool}" command is missing`)
  if (problems.length > 0)
    throw new Error(
      `the NAT tier cannot run: ${problems.join('; ')}. Run it as root on Linux with iproute2 and ` +
        'nftables installed (apt-get install -y iproute2 nftables conntrack), e.g. `sudo npm run test:nat`; ' +
        '.ci/run installs them and CI runs as root.'
    )
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Removes namespaces left by earlier runs that died before their teardown (their pid is gone). */
export function removeStale(): string[] {
  const removed: string[] = []
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? ''
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? ''
    const m = new RegExp(`^${PREFIX_BASE}(\\d+)-`).exec(name)
    if (!m || pidAlive(Number(m[1]))) continue
    killNamespaceProcesses(name)
    spawnSync('ip', ['netns', 'del', name])
    removed.push(name)
  }
  return removed
}

/** Kills what runs inside one of our namespaces (only processes this tier started live there). */
function killNamespaceProcesses(ns: string): void {
  const pids = (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '')
    .split('\n')
    .map(Number)
    .filter((p) => p > 0)
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
}

function addNs(t: Topology, name: string): string {
  const ns = `${t.prefix}-${name}`
  sh('ip', ['netns', 'add', ns])
  t.all.push(ns)
  inNs(ns, 'ip', 'link', 'set', 'lo', 'up')
  return ns
}

function veth(a: string, aName: string, b: string, bName: string): void {
  sh('ip', ['link', 'add', aName, 'netns', a, 'type', 'veth', 'peer', 'name', bName, 'netns', b])
  inNs(a, 'ip', 'link', 'set', aName, 'up')
  inNs(b, 'ip', 'link', 'set', bName, 'up')
}

/**
 * The router: NAT out of "wan", forward only what the home started, and (as home routers do)
 * drop unsolicited packets to itself instead of answering them with a reset.
 */
function nftNat(router: string, nat: NatKind): void {
  if (nat === 'upnp') {
    nftUpnp(router)
    return
  }
  const rule = nat === 'friendly' ? 'masquerade' : 'masquerade fully-random'
  const script = `table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" ${rule}
  }
}
table ip filter {
  chain input {
    type filter hook input priority filter; policy drop;
    iifname "lo" accept
    iifname "lan" accept
    ct state established,related accept
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    iifname "lan" accept
    ct state established,related accept
  }
}
`
  execFileSync('ip', ['netns', 'exec', router, 'nft', '-f', '-'], { input: script })
}

export const MINIUPNPD = '/usr/sbin/miniupnpd'

/**
 * The same router, plus the chains miniupnpd's nftables backend writes its mappings into (a DNAT
 * in prerouting_miniupnpd, an accept in the forward chain "miniupnpd"). miniupnpd creates no
 * tables or chains itself: without these every AddPortMapping fails with UPnP error 501 and
 * "nft_send_rule ... send_batch failed" in its log. Its defaults put the NAT chains in table
 * "filter" too, so the config below names each table and chain.
 */
function nftUpnp(router: string): void {
  const script = `table inet filter {
  chain miniupnpd {
  }
  chain input {
    type filter hook input priority filter; policy drop;
    iifname "lo" accept
    iifname "lan" accept
    ct state established,related accept
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    iifname "lan" accept
    ct state established,related accept
    jump miniupnpd
  }
}
table inet nat {
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    jump postrouting_miniupnpd
    oifname "wan" masquerade
  }
}
`
  execFileSync('ip', ['netns', 'exec', router, 'nft', '-f', '-'], { input: script })
  if (!existsSync(MINIUPNPD)) throw new Error(`${MINIUPNPD} is missing: apt-get install -y miniupnpd`)
  const conf = join(tmpdir(), `${router}-miniupnpd.conf`)
  writeFileSync(
    conf,
    [
      'ext_ifname=wan',
      'listening_ip=lan',
      'http_port=5000',
      'enable_upnp=yes',
      'enable_natpmp=yes',
      'secure_mode=yes',
      'uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b',
      'upnp_table_name=filter',
      'upnp_nat_table_name=nat',
      'upnp_forward_chain=miniupnpd',
      'upnp_nat_chain=prerouting_miniupnpd',
      'upnp_nat_postrouting_chain=postrouting_miniupnpd',
      // only the home's LAN may map, and only unprivileged ports
      'allow 1024-65535 10.0.0.0/16 1024-65535',
      'deny 0-65535 0.0.0.0/0 0-65535',
      ''
    ].join('\n')
  )
  // -d: stays in the foreground, so it lives in the router namespace until teardown kills it
  const child = spawn('ip', ['netns', 'exec', router, MINIUPNPD, '-d', '-f', conf, '-P', `${conf}.pid`], {
    stdio: 'ignore',
    detached: true
  })
  child.unref()
}

/** Builds the topology; on any failure it tears down what it made and rethrows. */
export async function buildTopology(
  homes: HomeSpec[],
  /** wired: every uplink (the homes' and the public node's) is a wire, so setDelay can delay them */
  opts: { chainHost?: boolean; wired?: boolean } = {}
): Promise<Topology> {
  const t: Topology = {
    prefix: `${PREFIX_BASE}${process.pid}`,
    inet: '',
    pub: '',
    homes: [],
    all: [],
    wires: []
  }
  try {
    t.inet = addNs(t, 'inet')
    inNs(t.inet, 'ip', 'link', 'add', 'br0', 'type', 'bridge')
    inNs(t.inet, 'ip', 'addr', 'add', `${RELAY_IP}/24`, 'dev', 'br0')
    inNs(t.inet, 'ip', 'link', 'set', 'br0', 'up')
    let port = 0
    const attach = async (ns: string, ip: string, delayMs?: number): Promise<void> => {
      const p = `p${port++}`
      if (delayMs !== undefined || opts.wired) await wireUplink(t, ns, p, delayMs ?? 0)
      else {
        veth(ns, 'wan', t.inet, p)
        inNs(t.inet, 'ip', 'link', 'set', p, 'master', 'br0')
      }
      inNs(ns, 'ip', 'addr', 'add', `${ip}/24`, 'dev', 'wan')
    }
    t.pub = addNs(t, 'pub')
    await attach(t.pub, PUBLIC_IP)
    if (opts.chainHost) {
      // Nothing can go further through this link: no test namespace has a default route (routers
      // and the internet know only 11.11.0.0/24 and their LANs), so no packet is ever addressed
      // past 11.11.0.3, whatever ip_forward says in the machine's namespace (a CI container's
      // may be on). What the namespaces can reach here is what listens on 11.11.0.3 or 0.0.0.0.
      t.chainLink = `ol${process.pid}c`
      sh('ip', ['link', 'add', t.chainLink, 'type', 'veth', 'peer', 'name', 'pc', 'netns', t.inet])
      inNs(t.inet, 'ip', 'link', 'set', 'pc', 'master', 'br0')
      inNs(t.inet, 'ip', 'link', 'set', 'pc', 'up')
      sh('ip', ['addr', 'add', `${CHAIN_IP}/24`, 'dev', t.chainLink])
      sh('ip', ['link', 'set', t.chainLink, 'up'])
    }
    for (const [i, h] of homes.entries()) {
      const router = addNs(t, `rtr${h.name}`)
      const ns = addNs(t, `home${h.name}`)
      const wanIp = `${INET}.${10 + i}`
      const lan = `10.0.${i + 1}`
      await attach(router, wanIp, h.delayMs)
      veth(router, 'lan', ns, 'eth0')
      inNs(router, 'ip', 'addr', 'add', `${lan}.1/24`, 'dev', 'lan')
      inNs(ns, 'ip', 'addr', 'add', `${lan}.2/24`, 'dev', 'eth0')
      inNs(ns, 'ip', 'route', 'add', 'default', 'via', `${lan}.1`)
      inNs(router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1')
      nftNat(router, h.nat)
      t.homes.push({ name: h.name, ns, router, ip: `${lan}.2`, wanIp, nat: h.nat })
    }
    return t
  } catch (err) {
    teardown(t)
    throw err
  }
}

/**
 * Delay of `ms` each way on every uplink. With wires (buildTopology's `wired`, or homes built with
 * `delayMs`) each wire takes the new delay; otherwise tc netem on the egress of each link out of a
 * home, router and the public node. False, changing nothing, where neither exists (this project's
 * kernels have no sch_netem: build `wired`): the caller says so.
 */
export function setDelay(t: Topology, ms: number): boolean {
  if (t.wires.length > 0) {
    for (const w of t.wires) w.stdin!.write(`${ms}\n`)
    return true
  }
  const links: Array<[string, string]> = [[t.pub, 'wan']]
  for (const h of t.homes) links.push([h.router, 'wan'], [h.router, 'lan'], [h.ns, 'eth0'])
  for (const [ns, dev] of links) {
    spawnSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', dev, 'root'])
    if (ms <= 0) continue
    const r = spawnSync(
      'ip',
      ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'netem', 'delay', `${ms}ms`],
      { encoding: 'utf8' }
    )
    if (r.status !== 0) {
      if (/qdisc kind is unknown/.test(r.stderr)) return false
      throw new Error(`tc netem on ${ns}/${dev} failed: ${r.stderr}`)
    }
  }
  return true
}

/** Removes every namespace of the run (killing what runs in them first). Safe to call twice. */
export function teardown(t: Topology): void {
  for (const ns of [...t.all].reverse()) {
    killNamespaceProcesses(ns)
    spawnSync('ip', ['netns', 'del', ns])
  }
  t.all.length = 0
  for (const w of t.wires) w.kill('SIGKILL')
  t.wires.length = 0
  // its peer went with the inet namespace, and the pair with it; this only covers a partial build
  if (t.chainLink) spawnSync('ip', ['link', 'del', t.chainLink], { stdio: 'ignore' })
  t.chainLink = undefined
}

export function namespacesLeft(t: Pick<Topology, 'prefix'>): string[] {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? ''
  return list
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${t.prefix}-`))
}

export function nsExists(ns: string): boolean {
  return existsSync(`/run/netns/${ns}`)
}
