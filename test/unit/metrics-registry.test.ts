// The node's metrics registry (src/metrics/): every family registered under openlora_, the adapter
// label bounded to N values plus `other` however many adapters pass, collectors run once per scrape,
// and two registries in one process keep their own counts.
import { readFileSync } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BASE_LABEL, BoundedLabel, NodeMetrics, OTHER_LABEL } from '../../src/metrics/index.ts'

test('the adapter label keeps at most N values and puts the rest in other', async () => {
  const m = new NodeMetrics({ adapterLabelLimit: 5, defaultMetrics: false })
  for (let i = 0; i < 10_000; i++) {
    const adapter = m.adapterLabel.of(`bafy${i.toString().padStart(6, '0')}`)
    m.requests.inc({ adapter, model: 'm', outcome: 'success' })
  }
  m.requests.inc({ adapter: m.adapterLabel.of(null), model: 'm', outcome: 'success' })
  const [family] = (await m.registry.getMetricsAsJSON()).filter((f) => f.name === 'openlora_requests_total')
  const values = (family as unknown as { values: { labels: { adapter: string }; value: number }[] }).values
  assert.is(values.length, 5 + 1 + 1, 'five adapters, other, base: 7 series for 10,001 jobs')
  const other = values.find((v) => v.labels.adapter === OTHER_LABEL)
  assert.is(other?.value, 10_000 - 5)
  assert.is(values.find((v) => v.labels.adapter === BASE_LABEL)?.value, 1)
  assert.equal(m.adapterLabel.kept(), ['bafy000000', 'bafy000001', 'bafy000002', 'bafy000003', 'bafy000004'])
})

test('a kept adapter keeps its own series after the bound is reached', () => {
  const l = new BoundedLabel(2)
  assert.is(l.of('a'), 'a')
  assert.is(l.of('b'), 'b')
  assert.is(l.of('c'), OTHER_LABEL)
  assert.is(l.of('a'), 'a')
  assert.is(l.of(''), BASE_LABEL)
  assert.throws(() => new BoundedLabel(-1), /limit must be an integer >= 0/)
})

test('every family is named openlora_ and scrapes as Prometheus text', async () => {
  const m = new NodeMetrics()
  const text = await m.scrape()
  const families = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => x[1]!)
  assert.ok(families.length > 40, `${families.length} families`)
  for (const f of families) assert.ok(f.startsWith('openlora_'), f)
  assert.ok(families.includes('openlora_process_cpu_seconds_total'), 'collectDefaultMetrics is on')
  assert.ok(families.includes('openlora_time_to_first_token_seconds'))
  assert.match(m.contentType, /^text\/plain; version=0\.0\.4/)
})

test('collectors refresh gauges once per scrape; a failing one does not fail the scrape', async () => {
  const m = new NodeMetrics({ defaultMetrics: false })
  let runs = 0
  m.addCollector(() => {
    runs++
    m.peersConnected.set(3)
    m.vouchersHeld.set(7)
  })
  const remove = m.addCollector(() => {
    throw new Error('service stopped')
  })
  const text = await m.scrape()
  assert.is(runs, 1, 'one run for all the gauges of one scrape')
  assert.match(text, /^openlora_peers_connected 3$/m)
  assert.match(text, /^openlora_vouchers_held 7$/m)
  await new Promise((r) => setImmediate(r))
  await m.scrape()
  assert.is(runs, 2)
  remove()
})

test('two registries in one process keep their own counts', async () => {
  const a = new NodeMetrics({ defaultMetrics: false })
  const b = new NodeMetrics({ defaultMetrics: false })
  a.routingFailovers.inc()
  assert.match(await a.scrape(), /^openlora_routing_failovers_total 1$/m)
  assert.match(await b.scrape(), /^openlora_routing_failovers_total 0$/m)
})

test('docs/METRICS.md documents every metric of the registry', async () => {
  const doc = readFileSync(new URL('../../docs/METRICS.md', import.meta.url), 'utf8')
  for (const f of await new NodeMetrics().registry.getMetricsAsJSON())
    assert.ok(doc.includes(`\`${f.name}\``), `docs/METRICS.md does not name ${f.name}`)
})

test.run()
