// Writes deploy/grafana/openlora-node.json: the Grafana dashboard for the node's metrics
// (docs/METRICS.md). Panels are declared here as data so the file stays consistent; run
//   ./node_modules/.bin/node scripts/make-grafana-dashboard.ts && npx biome format --write deploy/grafana
// after changing a metric, and test/unit/grafana-dashboard.test.ts checks every expression names
// a metric of the registry and every metric has a panel.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

type Unit = 'short' | 's' | 'percentunit' | 'bytes' | 'Bps' | 'reqps' | 'none'
interface Target {
  expr: string
  legend: string
}
interface Panel {
  title: string
  kind?: 'timeseries' | 'stat'
  unit?: Unit
  description?: string
  targets: Target[]
  w?: number
}

const sel = '{instance=~"$instance"}'
const by = (labels: string, expr: string): string => `sum by (${labels}) (${expr})`
const rate = (m: string, extra = ''): string => `rate(${m}{instance=~"$instance"${extra}}[$__rate_interval])`
const q = (p: number, m: string, labels = ''): string =>
  `histogram_quantile(${p}, sum by (le${labels ? `, ${labels}` : ''}) (${rate(`${m}_bucket`)}))`
const t = (expr: string, legend: string): Target => ({ expr, legend })

const rows: { title: string; panels: Panel[] }[] = [
  {
    title: 'Overview',
    panels: [
      {
        title: 'Peers connected',
        kind: 'stat',
        w: 4,
        targets: [t(`sum(openlora_peers_connected${sel})`, 'peers')]
      },
      {
        title: 'Peers advertising',
        kind: 'stat',
        w: 4,
        targets: [t(`sum(openlora_peer_table_size${sel})`, 'table')]
      },
      {
        title: 'Jobs / s',
        kind: 'stat',
        unit: 'reqps',
        w: 4,
        targets: [t(`sum(${rate('openlora_requests_total')})`, 'jobs')]
      },
      {
        title: 'Unclaimed OPEN',
        kind: 'stat',
        w: 4,
        targets: [t(`sum(openlora_vouchers_unclaimed_open${sel})`, 'OPEN')]
      },
      {
        title: 'Earned OPEN (operator)',
        kind: 'stat',
        w: 4,
        targets: [t(`sum(openlora_earnings_open_total{instance=~"$instance",role="operator"})`, 'OPEN')]
      },
      {
        title: 'Resident memory',
        kind: 'stat',
        unit: 'bytes',
        w: 4,
        targets: [t(`sum(openlora_process_resident_memory_bytes${sel})`, 'rss')]
      }
    ]
  },
  {
    title: 'Serving',
    panels: [
      {
        title: 'Jobs by outcome',
        unit: 'reqps',
        targets: [t(by('outcome', rate('openlora_requests_total')), '{{outcome}}')]
      },
      {
        title: 'Jobs by adapter (top 10)',
        unit: 'reqps',
        description: 'adapter label bounded: the first 50 adapters, then "other"; "base" = no adapter',
        targets: [t(`topk(10, ${by('adapter', rate('openlora_requests_total'))})`, '{{adapter}}')]
      },
      {
        title: 'Time to first token',
        unit: 's',
        targets: [
          t(q(0.5, 'openlora_time_to_first_token_seconds', 'model'), 'p50 {{model}}'),
          t(q(0.95, 'openlora_time_to_first_token_seconds', 'model'), 'p95 {{model}}')
        ]
      },
      {
        title: 'Inter-token latency',
        unit: 's',
        targets: [
          t(q(0.5, 'openlora_inter_token_latency_seconds', 'model'), 'p50 {{model}}'),
          t(q(0.95, 'openlora_inter_token_latency_seconds', 'model'), 'p95 {{model}}')
        ]
      },
      {
        title: 'End-to-end latency',
        unit: 's',
        targets: [
          t(q(0.5, 'openlora_e2e_request_latency_seconds', 'model'), 'p50 {{model}}'),
          t(q(0.95, 'openlora_e2e_request_latency_seconds', 'model'), 'p95 {{model}}')
        ]
      },
      {
        title: 'Tokens / s',
        targets: [
          t(`sum(${rate('openlora_prompt_tokens_total')})`, 'prompt'),
          t(`sum(${rate('openlora_generation_tokens_total')})`, 'generated')
        ]
      },
      {
        title: 'Queue and batch',
        targets: [
          t(by('model', `openlora_num_requests_waiting${sel}`), 'waiting {{model}}'),
          t(by('model', `openlora_num_requests_running${sel}`), 'running {{model}}')
        ]
      },
      {
        title: 'Running batch size',
        targets: [
          t(q(0.5, 'openlora_batch_size', 'model'), 'p50 {{model}}'),
          t(
            `sum by (model) (${rate('openlora_batch_size_sum')}) / sum by (model) (${rate('openlora_batch_size_count')})`,
            'mean {{model}}'
          )
        ]
      },
      {
        title: 'KV cache and LoRA slot pool use',
        unit: 'percentunit',
        targets: [
          t(`max by (model) (openlora_kv_cache_usage_ratio${sel})`, 'KV rows {{model}}'),
          t(`max by (model) (openlora_lora_slot_pool_usage_ratio${sel})`, 'LoRA slots {{model}}')
        ]
      },
      {
        title: 'Attribution time per job',
        unit: 's',
        targets: [
          t(q(0.5, 'openlora_attribution_seconds'), 'p50'),
          t(q(0.95, 'openlora_attribution_seconds'), 'p95')
        ]
      }
    ]
  },
  {
    title: 'Adapters',
    panels: [
      { title: 'Adapters by tier', targets: [t(by('tier', `openlora_adapters${sel}`), '{{tier}}')] },
      {
        title: 'Loads into the slot pool (by source tier)',
        targets: [t(by('tier', rate('openlora_adapter_loads_total')), 'from {{tier}}')]
      },
      {
        title: 'Load latency p95',
        unit: 's',
        targets: [t(q(0.95, 'openlora_adapter_load_seconds', 'tier'), 'from {{tier}}')]
      },
      { title: 'Evictions', targets: [t(by('tier', rate('openlora_adapter_evictions_total')), '{{tier}}')] },
      {
        title: 'Fetches by CID',
        targets: [t(by('outcome', rate('openlora_adapter_fetches_total')), '{{outcome}}')]
      },
      {
        title: 'Fetched bytes / s',
        unit: 'Bps',
        targets: [t(`sum(${rate('openlora_adapter_fetch_bytes_total')})`, 'bytes')]
      }
    ]
  },
  {
    title: 'Network',
    panels: [
      {
        title: 'Peers',
        targets: [
          t(`sum(openlora_peers_connected${sel})`, 'connected'),
          t(`sum(openlora_peer_table_size${sel})`, 'advertising')
        ]
      },
      {
        title: 'Adverts',
        targets: [
          t(`sum(${rate('openlora_adverts_received_total')})`, 'received'),
          t(`sum(${rate('openlora_adverts_accepted_total')})`, 'accepted')
        ]
      },
      {
        title: 'Adverts refused by reason',
        targets: [t(by('reason', rate('openlora_adverts_rejected_total')), '{{reason}}')]
      },
      {
        title: 'Forwards and failovers',
        targets: [
          t(by('outcome', rate('openlora_routing_forwards_total')), 'forward {{outcome}}'),
          t(`sum(${rate('openlora_routing_failovers_total')})`, 'failover')
        ]
      },
      {
        title: 'Reachability (1 = how peers reach this node)',
        targets: [t(`max by (state) (openlora_reachability${sel})`, '{{state}}')]
      },
      {
        title: 'Connections by kind',
        targets: [t(`sum by (kind) (openlora_connections${sel})`, '{{kind}}')]
      }
    ]
  },
  {
    title: 'Payments',
    panels: [
      { title: 'Vouchers held', targets: [t(`sum(openlora_vouchers_held${sel})`, 'vouchers')] },
      {
        title: 'Unclaimed value (OPEN)',
        targets: [t(`sum(openlora_vouchers_unclaimed_open${sel})`, 'OPEN')]
      },
      {
        title: 'Claims',
        targets: [
          t(by('outcome', `increase(openlora_claims_total{instance=~"$instance"}[$__range])`), '{{outcome}}')
        ]
      },
      {
        title: 'Claim gas',
        targets: [
          t(
            by('outcome', `increase(openlora_claim_gas_used_total{instance=~"$instance"}[$__range])`),
            '{{outcome}}'
          )
        ]
      },
      {
        title: 'Earnings by role (OPEN)',
        description: 'what this node’s confirmed claims paid out, split as the Settlement contract splits',
        targets: [t(by('role', `openlora_earnings_open_total${sel}`), '{{role}}')]
      }
    ]
  },
  {
    title: 'Gateway and process',
    panels: [
      {
        title: 'HTTP requests',
        unit: 'reqps',
        targets: [t(by('route, status', rate('openlora_gateway_requests_total')), '{{route}} {{status}}')]
      },
      {
        title: 'Gateway jobs',
        targets: [
          t(`sum(openlora_gateway_active_jobs${sel})`, 'active'),
          t(`sum(${rate('openlora_gateway_cancelled_total')})`, 'cancelled / s'),
          t(by('kind', rate('openlora_gateway_tokens_total')), '{{kind}} tokens / s')
        ]
      },
      {
        title: 'CPU',
        unit: 'percentunit',
        targets: [t(`sum(${rate('openlora_process_cpu_seconds_total')})`, 'cpu')]
      },
      {
        title: 'Memory',
        unit: 'bytes',
        targets: [
          t(`sum(openlora_process_resident_memory_bytes${sel})`, 'rss'),
          t(`sum(openlora_nodejs_heap_size_used_bytes${sel})`, 'heap used')
        ]
      },
      {
        title: 'Event loop lag p99',
        unit: 's',
        targets: [t(`max(openlora_nodejs_eventloop_lag_p99_seconds${sel})`, 'p99')]
      }
    ]
  }
]

function build(): unknown {
  const panels: unknown[] = []
  let id = 1
  let y = 0
  for (const row of rows) {
    panels.push({
      type: 'row',
      title: row.title,
      id: id++,
      collapsed: false,
      gridPos: { h: 1, w: 24, x: 0, y },
      panels: []
    })
    y += 1
    let x = 0
    for (const p of row.panels) {
      const w = p.w ?? 8
      const h = p.kind === 'stat' ? 4 : 8
      if (x + w > 24) {
        x = 0
        y += 8
      }
      panels.push({
        type: p.kind ?? 'timeseries',
        title: p.title,
        id: id++,
        ...(p.description ? { description: p.description } : {}),
        datasource: { type: 'prometheus', uid: '$datasource' },
        gridPos: { h, w, x, y },
        fieldConfig: { defaults: { unit: p.unit ?? 'short' }, overrides: [] },
        options:
          p.kind === 'stat'
            ? { reduceOptions: { calcs: ['lastNotNull'] } }
            : { legend: { displayMode: 'list' } },
        targets: p.targets.map((target, i) => ({
          refId: String.fromCharCode(65 + i),
          datasource: { type: 'prometheus', uid: '$datasource' },
          expr: target.expr,
          legendFormat: target.legend
        }))
      })
      x += w
    }
    y += 8
  }
  return {
    title: 'OpenLoRA node',
    uid: 'openlora-node',
    description: 'Health, load, adapters, network and earnings of OpenLoRA nodes (docs/METRICS.md)',
    tags: ['openlora'],
    schemaVersion: 39,
    version: 1,
    editable: true,
    time: { from: 'now-6h', to: 'now' },
    refresh: '30s',
    templating: {
      list: [
        { name: 'datasource', type: 'datasource', query: 'prometheus', label: 'Prometheus' },
        {
          name: 'instance',
          type: 'query',
          label: 'Node',
          datasource: { type: 'prometheus', uid: '$datasource' },
          query: 'label_values(openlora_process_start_time_seconds, instance)',
          includeAll: true,
          multi: true,
          refresh: 2
        }
      ]
    },
    panels
  }
}

export const DASHBOARD_FILE = join(import.meta.dirname, '..', 'deploy', 'grafana', 'openlora-node.json')
export const dashboardJson = (): string => `${JSON.stringify(build(), null, 2)}\n`

if (import.meta.main) writeFileSync(DASHBOARD_FILE, dashboardJson())
