// Copies the datanet versions a node needs for attribution without anyone running a command: when
// a job's adapter names a datanet version the node lacks (its provenance), the attribution
// service asks for it here, and the version is copied in the background from connected peers,
// trusted only against roots from the node's chain. That job's receipt carries the provenance
// commitment; jobs after the copy (and its span index) are attributed by spans.
import { type Logger, silentLogger } from '../../common/log.ts'
import type { Hex } from '../../crypto/hash.ts'
import type { DatanetExchange } from './exchange.ts'

/** After a failed copy of a version, the next request waits this long (peers and chain change slowly). */
export const REPLICATE_RETRY_MS = 60_000

export interface DatanetReplicatorComponents {
  exchange: Pick<DatanetExchange, 'fetchVersion'>
  /** peers to ask, in order (the node's connections) */
  peers: () => string[]
  /** trusted roots of versions 1..version, or undefined when the node has no chain to read them from */
  roots: (id: Hex, version: number) => Promise<Record<number, Hex> | undefined>
  logger?: Logger
}

export class DatanetReplicator {
  readonly #c: DatanetReplicatorComponents
  readonly #log: Logger
  readonly #inflight = new Map<string, Promise<void>>()
  readonly #failedAt = new Map<string, number>()
  readonly #stopping = new AbortController()

  constructor(components: DatanetReplicatorComponents) {
    this.#c = components
    this.#log = components.logger ?? silentLogger
  }

  /**
   * Starts copying `id@version` unless a copy is running or failed less than REPLICATE_RETRY_MS
   * ago. Never throws: the outcome is logged.
   */
  request(id: Hex, version: number): void {
    if (this.#stopping.signal.aborted) return
    const key = `${id}@${version}`
    const failed = this.#failedAt.get(key)
    if (this.#inflight.has(key) || (failed !== undefined && Date.now() - failed < REPLICATE_RETRY_MS)) return
    const copy = (async () => {
      const roots = await this.#c.roots(id, version)
      if (!roots) {
        this.#log.info('datanet needed for attribution, but this node has no chain to trust its roots', {
          datanet: key,
          hint: 'copy it with: openlora datanet fetch ID@VERSION --from PEER --root V=ROOT…'
        })
        this.#failedAt.set(key, Date.now())
        return
      }
      const peers = this.#c.peers()
      if (this.#stopping.signal.aborted) return
      const v = await this.#c.exchange.fetchVersion(id, version, peers, {
        trustedRoots: roots,
        signal: this.#stopping.signal
      })
      this.#failedAt.delete(key)
      this.#log.info('datanet copied for attribution', { datanet: key, root: v.root, contributions: v.count })
    })()
      .catch((err: unknown) => {
        if (this.#stopping.signal.aborted) return
        this.#failedAt.set(key, Date.now())
        this.#log.warn('datanet needed for attribution could not be copied', { datanet: key, err })
      })
      .finally(() => this.#inflight.delete(key))
    this.#inflight.set(key, copy)
  }

  /** Resolves when every copy started so far has ended. */
  async settled(): Promise<void> {
    await Promise.all([...this.#inflight.values()])
  }

  /** Cancels running copies and refuses new ones; resolves when they have ended. */
  async stop(): Promise<void> {
    this.#stopping.abort(new Error('the node is stopping'))
    await this.settled()
  }
}
