// Earnings: what the chain paid on this node's channels, split by role (operator, adapter owner,
// contributor pool, protocol) as Settlement splits it, what is pending, a chart over time and
// the claims with their gas and transaction hash.

import { api, card, empty, h, open, openNumber, PALETTE, shortId, stat, table, time } from './lib.js'
import uPlot from './vendor/uplot.js'

const ROLES = [
  ['operator', 'Operator (this node)'],
  ['owner', 'Adapter owners'],
  ['pool', 'Contributor pools'],
  ['protocol', 'Protocol']
]

function chart(series) {
  const box = h('div', { class: 'chart', 'data-testid': 'earnings-chart' })
  if (series.length === 0) return box
  const xs = series.map((p) => p.t / 1000)
  let lastPending = null
  const pending = series.map((p) =>
    p.pending === null ? lastPending : (lastPending = openNumber(p.pending))
  )
  const data = [
    xs,
    series.map((p) => openNumber(p.operator)),
    series.map((p) => openNumber(p.owner)),
    series.map((p) => openNumber(p.pool)),
    pending
  ]
  const top = Math.max(
    ...data
      .slice(1)
      .flat()
      .filter((v) => v !== null),
    0
  )
  const now = Date.now() / 1000
  const opts = {
    width: 1000,
    height: 280,
    cursor: { drag: { x: false, y: false } },
    legend: { live: false },
    // from the first point to now (at least 10 s), a little room either side and above
    scales: {
      x: {
        time: true,
        range: () => {
          const hi = Math.max(xs.at(-1), now)
          const lo = Math.min(xs[0], hi - 10)
          const pad = (hi - lo) * 0.03
          return [lo - pad, hi + pad]
        }
      },
      y: { range: () => [0, top > 0 ? top * 1.15 : 0.001] }
    },
    axes: [
      {},
      {
        label: 'OPEN',
        size: 80,
        values: (_u, v) =>
          v.map((x) => (x === 0 ? '0' : x < 1e-6 ? x.toExponential(1) : String(Number(x.toPrecision(3)))))
      }
    ],
    series: [
      {},
      { label: 'claimed: operator', stroke: PALETTE[0], width: 2, paths: uPlot.paths.stepped({ align: 1 }) },
      {
        label: 'claimed: adapter owners',
        stroke: PALETTE[1],
        width: 2,
        paths: uPlot.paths.stepped({ align: 1 })
      },
      { label: 'claimed: pools', stroke: PALETTE[2], width: 2, paths: uPlot.paths.stepped({ align: 1 }) },
      { label: 'pending (all roles)', stroke: '#6b7280', width: 2, dash: [6, 4], spanGaps: true }
    ]
  }
  // sized to its card once it is in the page
  requestAnimationFrame(() => {
    const u = new uPlot(opts, data, box)
    const fit = () => u.setSize({ width: Math.max(300, box.clientWidth), height: 280 })
    fit()
    new ResizeObserver(fit).observe(box)
  })
  return box
}

export default {
  title: 'Earnings',
  // claims land a little after the jobs that earned them; the chain is read every 5th tick (15 s)
  refreshOn: ['job', 'tick'],
  tickEvery: 5,
  load: () => api('/ui/api/earnings'),
  render(e) {
    if (!e.chain)
      return h(
        'div',
        {},
        h('h1', {}, 'Earnings'),
        empty(
          'This node runs no chain',
          'Jobs are free and nothing is claimed. Set ',
          h('code', {}, 'chain.preset'),
          ' to ',
          h('code', {}, 'local'),
          ' or ',
          h('code', {}, 'testnet'),
          ' to charge for jobs and earn OPEN.'
        )
      )
    const t = e.totals
    return h(
      'div',
      {},
      h('h1', {}, 'Earnings'),
      h('p', { class: 'lede' }, [
        'Rewards of operator ',
        shortId(e.node, 6),
        ` on chain ${e.chainId}. Pending is owed by receipts this node holds; the claimer sends it on-chain.`
      ]),
      h(
        'div',
        { class: 'grid' },
        stat('Pending', open(t.pending), 'owed by receipts, not yet claimed'),
        stat('Claimed', open(t.claimed), 'paid by the chain on this node’s channels'),
        stat('Earned by this node', open(t.earned), 'the operator’s share of claimed'),
        stat('Withdrawable', open(t.withdrawable), 'credited, not yet withdrawn')
      ),
      card(
        'Over time',
        e.series.length === 0
          ? empty('Nothing to chart yet', 'Points appear as receipts are paid and claims are mined.')
          : chart(e.series)
      ),
      card(
        'By role',
        table(
          [
            {
              title: 'Role',
              cell: ([k, label]) =>
                h(
                  'span',
                  {},
                  h('span', {
                    class: 'swatch',
                    style: { background: PALETTE[ROLES.findIndex((r) => r[0] === k)] }
                  }),
                  label
                )
            },
            { title: 'Claimed', num: true, cell: ([k]) => open(e.claimedByRole[k], 9) },
            { title: 'Pending', num: true, cell: ([k]) => open(e.pendingByRole[k], 9) }
          ],
          ROLES,
          { label: 'Earnings by role' }
        )
      ),
      card(
        'Claims',
        e.claims.length === 0
          ? empty(
              'No claims yet',
              'The claimer sends one when pending reaches ',
              h('code', {}, 'chain.minClaim'),
              ', or every ',
              h('code', {}, 'chain.claimIntervalSec'),
              '.'
            )
          : table(
              [
                { title: 'Mined', cell: (c) => time(c.at) },
                { title: 'Transaction', cell: (c) => shortId(c.txHash, 8) },
                { title: 'Vouchers', num: true, cell: (c) => String(c.vouchers) },
                { title: 'Total', num: true, cell: (c) => open(c.total, 9) },
                { title: 'Operator share', num: true, cell: (c) => open(c.byRole.operator, 9) },
                { title: 'Gas', num: true, cell: (c) => Number(c.gasUsed).toLocaleString() }
              ],
              e.claims,
              { label: 'Claims' }
            )
      )
    )
  }
}
