import type {
  Capabilities,
  CapabilityFilter,
  CapabilitySource,
  NodeCapabilities
} from '../serving/capability.ts'

/**
 * Forwards to the current source and re-dispatches its `changed`. Starts with the node's own
 * hardware-only source; the serving engine calls `use()` with its own when it starts.
 */
export class SwitchableCapabilities extends EventTarget implements NodeCapabilities {
  #source: CapabilitySource
  #filters: CapabilityFilter[] = []
  readonly #forward = (): void => {
    this.dispatchEvent(new Event('changed'))
  }

  constructor(initial: CapabilitySource) {
    super()
    this.#source = initial
    initial.addEventListener('changed', this.#forward)
  }

  use(source: CapabilitySource): void {
    this.#source.removeEventListener('changed', this.#forward)
    this.#source = source
    source.addEventListener('changed', this.#forward)
    this.#forward()
  }

  restrict(filter: CapabilityFilter): { changed(): void; remove(): void } {
    this.#filters.push(filter)
    this.#forward()
    return {
      changed: this.#forward,
      remove: () => {
        this.#filters = this.#filters.filter((f) => f !== filter)
        this.#forward()
      }
    }
  }

  async capabilities(): Promise<Capabilities> {
    let caps = await this.#source.capabilities()
    for (const f of this.#filters) caps = await f(caps)
    return caps
  }
}
