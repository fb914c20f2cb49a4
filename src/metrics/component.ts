// The registry as a node component: the composition root builds one NodeMetrics and every service
// factory finds it at `components.metrics` (declaration merging, docs/ARCHITECTURE.md "Seams").
import type { NodeMetrics } from './registry.ts'

declare module '../common/service.ts' {
  interface NodeComponents {
    /** the node's Prometheus registry and metrics (src/metrics/, docs/METRICS.md) */
    metrics: NodeMetrics
  }
}
