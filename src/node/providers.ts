// Provider records in the DHT for what this node holds: every adapter CID it advertises (all
// tiers) and every datanet version in its store, so a node that lacks one finds a holder even
// when no advert reached it (infer's adapterProviders, `datanet fetch` without --from). New items
// are provided when capabilities change and on a slow timer (datanets change without an event);
// kad-dht re-provides what it provided before the records expire.
import type { Libp2p } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import type { Logger } from '../common/log.ts'
import { datanetVersionKey } from '../protocols/routing/dht.ts'
import type { CapabilitySource } from '../serving/capability.ts'

/** How often datanet versions (no change event) are checked for new ones. */
const SCAN_INTERVAL_MS = 30_000
const PROVIDE_TIMEOUT_MS = 30_000

export interface DatanetLister {
  listDatanets(): Promise<Array<{ id: string }>>
  versions(id: string): Promise<Array<{ version: number }>>
}

export class ProviderPublisher {
  readonly #libp2p: Pick<Libp2p, 'contentRouting'>
  readonly #caps: CapabilitySource
  readonly #datanets: () => DatanetLister | undefined
  readonly #log: Logger
  /** key → provided; a failed provide is retried at the next scan */
  readonly #provided = new Set<string>()
  #timer?: ReturnType<typeof setInterval>
  #running = false
  #scanning?: Promise<void>
  readonly #onChanged = (): void => this.scan()

  constructor(
    libp2p: Pick<Libp2p, 'contentRouting'>,
    caps: CapabilitySource,
    datanets: () => DatanetLister | undefined,
    logger: Logger
  ) {
    this.#libp2p = libp2p
    this.#caps = caps
    this.#datanets = datanets
    this.#log = logger.child('providers')
  }

  start(): void {
    this.#running = true
    this.#caps.addEventListener('changed', this.#onChanged)
    this.#timer = setInterval(() => this.scan(), SCAN_INTERVAL_MS)
    this.#timer.unref()
    // the first scan waits for the DHT to know some peers (bootstrap dials are under way)
    setTimeout(() => this.scan(), 2_000).unref()
  }

  stop(): void {
    this.#running = false
    clearInterval(this.#timer)
    this.#caps.removeEventListener('changed', this.#onChanged)
  }

  /** Keys provided so far (CID strings), for status and tests. */
  provided(): string[] {
    return [...this.#provided]
  }

  scan(): void {
    if (!this.#running || this.#scanning) return
    this.#scanning = this.#scan()
      .catch((err) => this.#log.debug('provider scan failed', { err }))
      .finally(() => {
        this.#scanning = undefined
      })
  }

  async #scan(): Promise<void> {
    const keys: CID[] = []
    const caps = await this.#caps.capabilities()
    for (const cid of [...caps.adapters.hot, ...caps.adapters.warm, ...caps.adapters.cold]) {
      try {
        keys.push(CID.parse(cid))
      } catch {
        // not a CID (a test's fake id): nothing to provide
      }
    }
    const store = this.#datanets()
    if (store)
      for (const d of await store.listDatanets())
        for (const v of await store.versions(d.id)) keys.push(await datanetVersionKey(d.id, v.version))
    for (const key of keys) {
      if (!this.#running) return
      const k = key.toString()
      if (this.#provided.has(k)) continue
      try {
        await this.#libp2p.contentRouting.provide(key, { signal: AbortSignal.timeout(PROVIDE_TIMEOUT_MS) })
        this.#provided.add(k)
        this.#log.debug('provided', { key: k })
      } catch (err) {
        // no DHT server reachable yet: the next scan tries again
        this.#log.debug('provide failed', { key: k, err })
      }
    }
  }
}
