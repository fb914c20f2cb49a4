// The gateway's Prometheus registry (prom-client). One registry per node, not prom-client's global
// one, so several nodes in one process (the e2e tests) keep their own counts. The observability
// issue (19) adds the node's other metrics to this registry.
import { Counter, Gauge, Registry } from 'prom-client'

export class GatewayMetrics {
  readonly registry = new Registry()
  readonly requests = new Counter({
    name: 'openlora_gateway_requests_total',
    help: 'HTTP requests answered by the gateway, by route and status code',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry]
  })
  readonly tokens = new Counter({
    name: 'openlora_gateway_tokens_total',
    help: 'tokens of finished gateway jobs, by kind (prompt or completion)',
    labelNames: ['kind'] as const,
    registers: [this.registry]
  })
  readonly activeStreams = new Gauge({
    name: 'openlora_gateway_active_jobs',
    help: 'completion requests running now (streamed or not)',
    registers: [this.registry]
  })
  readonly cancelled = new Counter({
    name: 'openlora_gateway_cancelled_total',
    help: 'jobs cancelled because the HTTP client went away mid-job',
    registers: [this.registry]
  })
}
