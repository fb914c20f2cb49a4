// H7 (docs/THREATS.md), register before advertising: commit–reveal stops a front-runner who learns
// an adapter id from the owner's pending registration, but not one who learns it earlier, from an
// advert or a DHT provider record published before the owner committed (the id is the CID's
// digest). So a node with a chain advertises an adapter only once it is registered on-chain, and
// so is every datanet its registration declares (the adapter's files name them: advertising it
// would make those ids public too). Ready ids are cached for good (a registration is never
// undone), the others checked again every `recheckMs`; `onRegistered` fires when one becomes
// ready (to re-advertise).
import type { Hex } from 'viem'
import { type Logger, silentLogger } from '../common/log.ts'
import { cidDigest } from '../crypto/cid.ts'
import { toHex } from '../crypto/hash.ts'

export interface RegistrationGateInit {
  /** true once the adapter and every datanet its registration declares are on-chain */
  ready(adapterId: Hex): Promise<boolean>
  onRegistered?: () => void
  recheckMs?: number
  logger?: Logger
}

const DEFAULT_RECHECK_MS = 5_000

export class RegistrationGate {
  readonly #init: RegistrationGateInit
  readonly #log: Logger
  readonly #registered = new Set<string>()
  /** cid → when it was last seen unregistered */
  readonly #pending = new Map<string, number>()
  #timer?: ReturnType<typeof setInterval>

  constructor(init: RegistrationGateInit) {
    this.#init = init
    this.#log = init.logger ?? silentLogger
  }

  start(): void {
    this.#timer = setInterval(() => void this.#recheck(), this.#init.recheckMs ?? DEFAULT_RECHECK_MS)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  /** The CIDs (in order) whose adapters are registered on-chain; the rest wait. */
  async registered(cids: readonly string[]): Promise<string[]> {
    const now = Date.now()
    const recheck = this.#init.recheckMs ?? DEFAULT_RECHECK_MS
    const out: string[] = []
    for (const cid of cids) {
      if (this.#registered.has(cid)) {
        out.push(cid)
        continue
      }
      const seen = this.#pending.get(cid)
      if (seen !== undefined && now - seen < recheck) continue
      if (await this.#check(cid)) out.push(cid)
    }
    return out
  }

  async #check(cid: string): Promise<boolean> {
    let id: Hex
    try {
      id = toHex(cidDigest(cid))
    } catch {
      // not an adapter CID: nothing on-chain can own it, so nothing to squat either
      this.#registered.add(cid)
      return true
    }
    try {
      if (await this.#init.ready(id)) {
        this.#registered.add(cid)
        this.#pending.delete(cid)
        return true
      }
    } catch (err) {
      this.#log.debug('registration check failed; not advertised yet', { cid, err })
    }
    if (!this.#pending.has(cid))
      this.#log.info(
        'adapter (or a datanet it declares) not registered on-chain: not advertised until it is',
        {
          cid,
          adapterId: id
        }
      )
    this.#pending.set(cid, Date.now())
    return false
  }

  async #recheck(): Promise<void> {
    let found = false
    for (const cid of [...this.#pending.keys()]) if (await this.#check(cid)) found = true
    if (found) this.#init.onRegistered?.()
  }
}
