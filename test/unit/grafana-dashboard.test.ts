// deploy/grafana/openlora-node.json (made by scripts/make-grafana-dashboard.ts): every PromQL
// expression names only metrics the node's registry exports (histograms by their _bucket, _sum and
// _count series), every node metric has a panel, and the committed file is the generator's output.
import { readFileSync } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DASHBOARD_FILE, dashboardJson } from '../../scripts/make-grafana-dashboard.ts'
import { NodeMetrics } from '../../src/metrics/registry.ts'

interface Panel {
  id: number
  type: string
  title: string
  gridPos: { x: number; y: number; w: number; h: number }
  targets?: { expr: string; refId: string }[]
}

const text = readFileSync(DASHBOARD_FILE, 'utf8')
const dashboard = JSON.parse(text) as { panels: Panel[]; templating: { list: { query: unknown }[] } }
const families = new Map(
  (await new NodeMetrics().registry.getMetricsAsJSON()).map((m) => [m.name, m.type as unknown as string])
)

/** the registry family a series name belongs to (a histogram's _bucket/_sum/_count → the histogram) */
function familyOf(series: string): string | undefined {
  if (families.has(series)) return series
  const base = series.replace(/_(bucket|sum|count)$/, '')
  return families.get(base) === 'histogram' ? base : undefined
}

const exprs = [
  ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr }))),
  ...dashboard.templating.list
    .filter((v) => typeof v.query === 'string' && v.query.includes('openlora_'))
    .map((v) => ({ panel: 'templating', expr: v.query as string }))
]

test('every expression names a metric the registry exports', () => {
  assert.ok(exprs.length > 40, `${exprs.length} expressions`)
  for (const { panel, expr } of exprs) {
    const names = expr.match(/\bopenlora_[a-z0-9_]+/g) ?? []
    assert.ok(names.length > 0, `${panel}: ${expr} names no openlora_ metric`)
    for (const n of names) assert.ok(familyOf(n), `${panel}: ${n} is not a metric of the registry`)
  }
})

test('every node metric (beyond the process defaults) has a panel', () => {
  const used = new Set(
    exprs.flatMap(({ expr }) => (expr.match(/\bopenlora_[a-z0-9_]+/g) ?? []).map((n) => familyOf(n)))
  )
  const own = new NodeMetrics({ defaultMetrics: false })
  for (const m of own.registry.getMetricsAsArray()) assert.ok(used.has(m.name), `no panel shows ${m.name}`)
})

test('panels have unique ids, fit the 24-column grid, and each target a refId', () => {
  const ids = dashboard.panels.map((p) => p.id)
  assert.is(new Set(ids).size, ids.length)
  for (const p of dashboard.panels) {
    assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title} leaves the grid`)
    for (const t of p.targets ?? []) assert.match(t.refId, /^[A-Z]$/)
  }
})

test('the committed dashboard is the generator’s output', () => {
  // compared as data: biome formats the committed file
  assert.equal(
    dashboard,
    JSON.parse(dashboardJson()),
    'run ./node_modules/.bin/node scripts/make-grafana-dashboard.ts'
  )
})

test.run()
