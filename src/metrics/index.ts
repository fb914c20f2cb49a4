// The metrics layer: one registry per node, importable from every layer above common.
export { BASE_LABEL, BoundedLabel, OTHER_LABEL } from './bounded-label.ts'
export {
  type Collector,
  DEFAULT_ADAPTER_LABEL_LIMIT,
  METRIC_PREFIX,
  NodeMetrics,
  type NodeMetricsInit,
  openOf
} from './registry.ts'
