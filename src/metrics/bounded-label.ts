// A label whose values could be unbounded (adapter CIDs: a node may see 10,000 of them) kept to at
// most `limit` distinct values plus `other`. The first `limit` values seen keep their own series
// for the life of the process; later ones share `other`. Why first-come and not a moving top-N:
// a Prometheus counter cannot move its past counts from one series to another, so re-ranking
// would make series vanish and reappear (rate() across them reads as resets). On a node the
// first adapters seen are, in practice, the ones it serves (its own imports, its hot tier).

export const OTHER_LABEL = 'other'
/** the label value for a job on the bare base model (no adapter) */
export const BASE_LABEL = 'base'

export class BoundedLabel {
  readonly limit: number
  readonly #kept = new Set<string>()

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 0)
      throw new RangeError(`limit must be an integer >= 0 (got ${limit})`)
    this.limit = limit
  }

  /** The label value to use for `value`: itself while there is room (or it already has a series), else `other`. */
  of(value: string | null | undefined): string {
    if (value === null || value === undefined || value === '') return BASE_LABEL
    if (this.#kept.has(value)) return value
    if (this.#kept.size >= this.limit) return OTHER_LABEL
    this.#kept.add(value)
    return value
  }

  /** the values that have a series of their own */
  kept(): string[] {
    return [...this.#kept]
  }
}
