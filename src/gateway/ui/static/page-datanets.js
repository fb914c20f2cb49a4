// Datanets: the datanets this node keeps, each version's Merkle root against the root recorded
// on-chain, and who contributed how much.
import { api, badge, bytes, card, empty, h, shortId, table } from './lib.js'

function chainBadge(s) {
  if (s === null) return h('span', { class: 'muted' }, 'no chain')
  if (s === 'match') return badge('on-chain root matches', 'ok')
  if (s === 'absent') return badge('not on-chain', 'warn')
  return badge('on-chain root differs', 'bad')
}

function datanet(d) {
  const total = d.contributors.reduce((n, c) => n + c.bytes, 0) || 1
  return card(
    null,
    h('h2', {}, d.name, ' ', h('span', { class: 'muted small' }, `v${d.latestVersion}`)),
    d.description ? h('p', { class: 'muted', style: { marginTop: '-6px' } }, d.description) : null,
    h(
      'dl',
      { class: 'kv small' },
      h('dt', {}, 'Id'),
      h('dd', {}, shortId(d.id, 10)),
      h('dt', {}, 'Owner'),
      h('dd', {}, shortId(d.owner, 6))
    ),
    h('h2', { style: { marginTop: '16px' } }, 'Versions'),
    d.versions.length === 0
      ? empty('No published version', 'Publish one: ', h('code', {}, `openlora datanet publish ${d.id}`))
      : table(
          [
            { title: 'Version', cell: (v) => `v${v.version}` },
            { title: 'Root', cell: (v) => shortId(v.root, 8) },
            { title: 'Contributions', num: true, cell: (v) => String(v.count) },
            { title: 'Published', cell: (v) => new Date(v.publishedAt).toLocaleString() },
            { title: 'On-chain', cell: (v) => chainBadge(v.onChain) }
          ],
          d.versions,
          { label: `Versions of ${d.name}` }
        ),
    h('h2', { style: { marginTop: '16px' } }, 'Contributors'),
    table(
      [
        { title: 'Contributor', cell: (c) => shortId(c.address, 6) },
        { title: 'Contributions', num: true, cell: (c) => String(c.contributions) },
        { title: 'Text', num: true, cell: (c) => bytes(c.bytes) },
        {
          title: 'Share of text',
          cell: (c) =>
            h(
              'div',
              { class: 'row', style: { alignItems: 'center', gap: '8px' } },
              h(
                'div',
                { class: 'bar', style: { flex: '1' } },
                h('span', { style: { width: `${(100 * c.bytes) / total}%`, background: 'var(--accent)' } })
              ),
              `${((100 * c.bytes) / total).toFixed(1)}%`
            )
        }
      ],
      d.contributors,
      { label: `Contributors of ${d.name}` }
    )
  )
}

export default {
  title: 'Datanets',
  refreshOn: [],
  load: () => api('/ui/api/datanets'),
  render(d) {
    return h(
      'div',
      {},
      h('h1', {}, 'Datanets'),
      h(
        'p',
        { class: 'lede' },
        'Datasets whose contributors are paid when an adapter trained on them is used. Each version’s root is checked against the chain.'
      ),
      d.datanets.length === 0
        ? empty(
            'No datanets on this node',
            'Create one: ',
            h('code', {}, 'openlora datanet create --name NAME'),
            ', add text with ',
            h('code', {}, 'openlora datanet contribute'),
            ', then ',
            h('code', {}, 'openlora datanet publish'),
            '. Or copy one from a peer with ',
            h('code', {}, 'openlora datanet fetch'),
            '.'
          )
        : d.datanets.map(datanet)
    )
  }
}
