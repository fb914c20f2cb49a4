// The node's one Prometheus registry (prom-client) and every metric it exports, named in the style
// of vLLM and LoRAX (`vllm:time_to_first_token_seconds` → `openlora_time_to_first_token_seconds`).
// One registry per node, not prom-client's global one, so several nodes in one process (the e2e
// tests) keep their own counts. Every layer may import this folder (it imports only prom-client):
// the layer that sees an event counts it; gauges that mirror state are filled at scrape time by
// collectors the owning service registers (`addCollector`). docs/METRICS.md lists each metric.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { BoundedLabel } from './bounded-label.ts'

export const METRIC_PREFIX = 'openlora_'
/** adapter label values with a series of their own before the rest share `other` */
export const DEFAULT_ADAPTER_LABEL_LIMIT = 50

// Buckets: vLLM's, extended down to the millisecond range a tiny model on a CPU reaches.
const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40
]
const ITL_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5
]
const E2E_BUCKETS = [0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 60, 120]
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
const LOAD_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const ATTRIBUTION_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]

export type Collector = () => void | Promise<void>

/** wei → OPEN as a float for a gauge or counter (exact to the gwei, plenty for a dashboard) */
export function openOf(wei: bigint): number {
  return Number(wei / 1_000_000_000n) / 1e9
}

export interface NodeMetricsInit {
  /** adapter label values kept before `other` (default 50) */
  adapterLabelLimit?: number
  /** process and Node.js runtime metrics (collectDefaultMetrics); default on */
  defaultMetrics?: boolean
}

export class NodeMetrics {
  readonly registry = new Registry()
  /** bounds the `adapter` label of every metric that has one */
  readonly adapterLabel: BoundedLabel
  readonly #collectors: Collector[] = []
  #collecting: Promise<void> | undefined

  // ── serving (jobs this node ran) ──
  readonly requests: Counter<'adapter' | 'model' | 'outcome'>
  readonly timeToFirstToken: Histogram<'model'>
  readonly interTokenLatency: Histogram<'model'>
  readonly e2eLatency: Histogram<'model' | 'outcome'>
  readonly promptTokens: Counter<'adapter' | 'model'>
  readonly generationTokens: Counter<'adapter' | 'model'>
  readonly requestsWaiting: Gauge<'model'>
  readonly requestsRunning: Gauge<'model'>
  readonly batchSize: Histogram<'model'>
  readonly kvCacheUsage: Gauge<'model'>
  readonly slotPoolUsage: Gauge<'model'>
  readonly attributionSeconds: Histogram
  // ── adapters ──
  readonly adapters: Gauge<'tier'>
  readonly adapterLoads: Counter<'tier'>
  readonly adapterLoadSeconds: Histogram<'tier'>
  readonly adapterEvictions: Counter<'tier'>
  readonly adapterFetches: Counter<'adapter' | 'outcome'>
  readonly adapterFetchBytes: Counter
  // ── network ──
  readonly peersConnected: Gauge
  readonly connections: Gauge<'kind'>
  readonly reachability: Gauge<'state'>
  readonly peerTableSize: Gauge
  readonly advertsReceived: Counter
  readonly advertsAccepted: Counter
  readonly advertsRejected: Counter<'reason'>
  readonly routingForwards: Counter<'outcome'>
  readonly routingFailovers: Counter
  // ── payments ──
  readonly vouchersHeld: Gauge
  readonly vouchersUnclaimed: Gauge
  readonly claims: Counter<'outcome'>
  readonly claimGas: Counter<'outcome'>
  readonly earnings: Counter<'role'>
  // ── gateway (HTTP) ──
  readonly gatewayRequests: Counter<'route' | 'status'>
  readonly gatewayTokens: Counter<'kind'>
  readonly gatewayActiveJobs: Gauge
  readonly gatewayCancelled: Counter

  constructor(init: NodeMetricsInit = {}) {
    this.adapterLabel = new BoundedLabel(init.adapterLabelLimit ?? DEFAULT_ADAPTER_LABEL_LIMIT)
    const registers = [this.registry]
    // gauges mirroring state ask the collectors once per scrape, however many gauges there are
    const collect = () => this.#collect()
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Counter<L>({ name: METRIC_PREFIX + name, help, labelNames, registers })
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Gauge<L>({ name: METRIC_PREFIX + name, help, labelNames, registers, collect })
    const histogram = <L extends string>(
      name: string,
      help: string,
      buckets: number[],
      labelNames: readonly L[] = []
    ) => new Histogram<L>({ name: METRIC_PREFIX + name, help, labelNames, buckets, registers })

    this.requests = counter(
      'requests_total',
      'jobs this node’s engine ran or refused, by adapter (bounded: first N, then "other"; "base" for none), base model and outcome (success, cancelled, or the error code in lower case, e.g. busy)',
      ['adapter', 'model', 'outcome']
    )
    this.timeToFirstToken = histogram(
      'time_to_first_token_seconds',
      'time from a job’s submission to the engine (queueing included) to its first generated token',
      TTFT_BUCKETS,
      ['model']
    )
    this.interTokenLatency = histogram(
      'inter_token_latency_seconds',
      'time between two generated tokens of one job',
      ITL_BUCKETS,
      ['model']
    )
    this.e2eLatency = histogram(
      'e2e_request_latency_seconds',
      'time from a job’s submission to the engine to its end (done, error or cancel)',
      E2E_BUCKETS,
      ['model', 'outcome']
    )
    this.promptTokens = counter('prompt_tokens_total', 'prompt tokens of jobs served here', [
      'adapter',
      'model'
    ])
    this.generationTokens = counter('generation_tokens_total', 'tokens generated by jobs served here', [
      'adapter',
      'model'
    ])
    this.requestsWaiting = gauge('num_requests_waiting', 'jobs queued in the engine, not yet running', [
      'model'
    ])
    this.requestsRunning = gauge('num_requests_running', 'jobs in the running batch', ['model'])
    this.batchSize = histogram(
      'batch_size',
      'sequences in the running batch at each engine step',
      BATCH_BUCKETS,
      ['model']
    )
    this.kvCacheUsage = gauge('kv_cache_usage_ratio', 'share of KV cache sequence slots in use (0..1)', [
      'model'
    ])
    this.slotPoolUsage = gauge(
      'lora_slot_pool_usage_ratio',
      'share of LoRA slot-pool slots holding an adapter (0..1)',
      ['model']
    )
    this.attributionSeconds = histogram(
      'attribution_seconds',
      'time to attribute one finished job (span proof or provenance commitment)',
      ATTRIBUTION_BUCKETS
    )
    this.adapters = gauge(
      'adapters',
      'adapters held, by tier (hot: in the slot pool, warm: in RAM, cold: on disk)',
      ['tier']
    )
    this.adapterLoads = counter(
      'adapter_loads_total',
      'adapter loads into the LoRA slot pool, by the tier the adapter came from (cold: read from disk and decoded, warm: copied from RAM)',
      ['tier']
    )
    this.adapterLoadSeconds = histogram(
      'adapter_load_seconds',
      'time to bring an adapter into the slot pool, by the tier it came from',
      LOAD_BUCKETS,
      ['tier']
    )
    this.adapterEvictions = counter(
      'adapter_evictions_total',
      'adapters evicted to make room, by the tier they left (hot: the slot pool, warm: RAM)',
      ['tier']
    )
    this.adapterFetches = counter(
      'adapter_fetches_total',
      'adapter fetches by CID from peers, by adapter (bounded) and outcome (success, failure)',
      ['adapter', 'outcome']
    )
    this.adapterFetchBytes = counter('adapter_fetch_bytes_total', 'bytes of adapter files fetched from peers')
    this.peersConnected = gauge('peers_connected', 'libp2p peers with an open connection')
    this.connections = gauge(
      'connections',
      'open libp2p connections by kind (direct, or relayed through a circuit relay: limited)',
      ['kind']
    )
    this.reachability = gauge(
      'reachability',
      '1 for how peers reach this node now (public: a confirmed public address; relayed: only through relay reservations; local: neither), 0 for the others',
      ['state']
    )
    this.peerTableSize = gauge('peer_table_size', 'peers with a live advert in the PeerTable')
    this.advertsReceived = counter(
      'adverts_received_total',
      'capability adverts received over gossip (each one validated: accepted or refused)'
    )
    this.advertsAccepted = counter(
      'adverts_accepted_total',
      'adverts that passed validation and entered the PeerTable'
    )
    this.advertsRejected = counter(
      'adverts_rejected_total',
      'adverts refused, by reason (the validator’s REJECT/IGNORE reason)',
      ['reason']
    )
    this.routingForwards = counter(
      'routing_forwards_total',
      'jobs forwarded to another peer, by outcome (success, cancelled, or the error code in lower case)',
      ['outcome']
    )
    this.routingFailovers = counter(
      'routing_failovers_total',
      'route candidates given up on before the first token so the next one could serve'
    )
    this.vouchersHeld = gauge('vouchers_held', 'vouchers stored and not yet claimed on-chain')
    this.vouchersUnclaimed = gauge('vouchers_unclaimed_open', 'value of the unclaimed vouchers, in OPEN')
    this.claims = counter(
      'claims_total',
      'on-chain claim transactions, by outcome (sent, confirmed, reverted, failed)',
      ['outcome']
    )
    this.claimGas = counter(
      'claim_gas_used_total',
      'gas used by mined claim transactions, by outcome (confirmed; a revert is caught in simulation, before any gas is spent)',
      ['outcome']
    )
    this.earnings = counter(
      'earnings_open_total',
      'OPEN paid out by this node’s confirmed claims, by role (operator: this node; adapter_owner; pool: datanet contributors), split as the Settlement contract splits',
      ['role']
    )
    this.gatewayRequests = counter(
      'gateway_requests_total',
      'HTTP requests answered by the gateway, by route and status code',
      ['route', 'status']
    )
    this.gatewayTokens = counter(
      'gateway_tokens_total',
      'tokens of finished gateway jobs, by kind (prompt or completion)',
      ['kind']
    )
    this.gatewayActiveJobs = new Gauge({
      name: `${METRIC_PREFIX}gateway_active_jobs`,
      help: 'completion requests running now (streamed or not)',
      registers
    })
    this.gatewayCancelled = counter(
      'gateway_cancelled_total',
      'jobs cancelled because the HTTP client went away mid-job'
    )
    if (init.defaultMetrics !== false)
      collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX })
  }

  /** Adds a function that refreshes gauges from its service's state; it runs once per scrape. */
  addCollector(fn: Collector): () => void {
    this.#collectors.push(fn)
    return () => {
      const i = this.#collectors.indexOf(fn)
      if (i >= 0) this.#collectors.splice(i, 1)
    }
  }

  /** The Prometheus text exposition of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }

  // One run of the collectors per scrape: every gauge's collect() shares the promise until the
  // scrape's microtasks have run.
  #collect(): Promise<void> {
    this.#collecting ??= (async () => {
      try {
        // a failing collector leaves its gauges at their last values; the scrape still answers
        for (const fn of this.#collectors)
          await Promise.resolve()
            .then(fn)
            .catch(() => {})
      } finally {
        setImmediate(() => {
          this.#collecting = undefined
        })
      }
    })()
    return this.#collecting
  }
}
