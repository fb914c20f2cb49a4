// Adapters: this node's adapter stores by tier, each adapter's use (hits, cold loads and the
// last load's time), where it came from (datanets and versions) and whether it is registered.
import { api, badge, bytes, card, empty, h, ms, open, pct, shortId, stat, table } from './lib.js'

function provenance(p) {
  if (!p) return h('span', { class: 'muted' }, 'none recorded')
  return h(
    'div',
    {},
    p.map((d) => h('div', { class: 'small' }, shortId(d.id, 5), ` v${d.version} · ${pct(d.bp)}`))
  )
}

function onChain(c, chain) {
  if (!chain) return h('span', { class: 'muted' }, 'no chain')
  if (!c.registered) return badge('not registered', 'bad')
  return h(
    'div',
    {},
    badge('registered', 'ok'),
    h(
      'div',
      { class: 'muted small' },
      'owner ',
      shortId(c.owner, 4),
      ` · fee ${open(c.feePer1kTokens, 9)}/1k`
    )
  )
}

export default {
  title: 'Adapters',
  refreshOn: ['tick'],
  load: () => api('/ui/api/adapters'),
  render(d) {
    const s = d.stats.reduce(
      (a, x) => ({
        hot: a.hot + x.hot,
        warm: a.warm + x.warm,
        registered: a.registered + x.registered,
        hits: {
          hot: a.hits.hot + x.hits.hot,
          warm: a.hits.warm + x.hits.warm,
          cold: a.hits.cold + x.hits.cold
        },
        coldLoads: a.coldLoads + x.coldLoads,
        evictions: a.evictions + x.evictions.warm + x.evictions.hot
      }),
      { hot: 0, warm: 0, registered: 0, hits: { hot: 0, warm: 0, cold: 0 }, coldLoads: 0, evictions: 0 }
    )
    return h(
      'div',
      {},
      h('h1', {}, 'Adapters'),
      h(
        'p',
        { class: 'lede' },
        'LoRA adapters in this node’s stores: hot (in a GPU/CPU slot), warm (in memory), cold (on disk).'
      ),
      h(
        'div',
        { class: 'grid' },
        stat('Adapters', String(s.registered), `${s.hot} hot · ${s.warm} warm`),
        stat(
          'Hits',
          String(s.hits.hot + s.hits.warm + s.hits.cold),
          `${s.hits.hot} hot · ${s.hits.warm} warm · ${s.hits.cold} cold`
        ),
        stat('Cold loads', String(s.coldLoads), `${s.evictions} evictions`)
      ),
      card(
        'Stored adapters',
        d.adapters.length === 0
          ? empty(
              'No adapters in this node’s stores',
              'Add one on the running node: ',
              h('code', {}, 'openlora adapter add DIR'),
              h('br'),
              'or have a job name an adapter a peer advertises; it is fetched by CID.'
            )
          : table(
              [
                {
                  title: 'Adapter (CID)',
                  cell: (a) => h('div', {}, shortId(a.cid, 8), h('div', { class: 'muted small' }, a.model))
                },
                { title: 'Tier', cell: (a) => badge(a.tier, a.tier) },
                { title: 'Hits', num: true, cell: (a) => String(a.hits) },
                { title: 'Loads', num: true, cell: (a) => String(a.loads) },
                { title: 'Last load', num: true, cell: (a) => ms(a.lastLoadMs) },
                { title: 'Rank · size', num: true, cell: (a) => `r${a.rank} · ${bytes(a.sizeBytes)}` },
                { title: 'Provenance', cell: (a) => provenance(a.provenance) },
                { title: 'On-chain', cell: (a) => onChain(a.onChain, d.chain) }
              ],
              d.adapters,
              { label: 'Adapters' }
            )
      )
    )
  }
}
