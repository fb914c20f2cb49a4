// Network: the peers this node knows from their capability adverts (adapters by tier, load,
// price) and how it is connected to each. Reloads on every live tick.
import { api, badge, card, duration, empty, h, open, shortId, table } from './lib.js'
import { reach } from './page-overview.js'

function adapters(a) {
  const total = a.hot.count + a.warm.count + a.cold.count
  if (total === 0) return h('span', { class: 'muted' }, 'none')
  const list = [...a.hot.list, ...a.warm.list, ...a.cold.list]
  return h(
    'div',
    {},
    badge(`${a.hot.count} hot`, 'hot'),
    ' ',
    badge(`${a.warm.count} warm`, 'warm'),
    ' ',
    badge(`${a.cold.count} cold`, 'cold'),
    h(
      'details',
      { class: 'small' },
      h('summary', { class: 'muted' }, `${list.length} listed`),
      h(
        'ul',
        { class: 'mono' },
        list.map((c) => h('li', {}, shortId(c, 8)))
      )
    )
  )
}

export default {
  title: 'Network',
  refreshOn: ['tick'],
  load: async () => ({ net: await api('/ui/api/network'), me: await api('/ui/api/overview') }),
  render({ net, me }) {
    const peers = net.peers.filter((p) => p.peerId !== net.self)
    const live = peers.filter((p) => p.live).length
    const tcp = me.addrs.find((a) => a.includes('/tcp/') && !a.includes('/ws')) ?? me.addrs[0] ?? ''
    return h(
      'div',
      {},
      h('h1', {}, 'Network'),
      h(
        'p',
        { class: 'lede' },
        `${peers.length} peers known from adverts, ${live} live. Updates every few seconds.`
      ),
      card(
        'Peers',
        peers.length === 0
          ? empty(
              'No peers yet',
              'Start another node that joins this one: ',
              h(
                'div',
                { style: { margin: '10px 0' } },
                h(
                  'code',
                  {},
                  `openlora start --bootstrap ${tcp.includes('/p2p/') ? tcp : `${tcp}/p2p/${net.self}`}`
                )
              ),
              'Nodes on the same LAN find each other by mDNS.'
            )
          : table(
              [
                {
                  title: 'Peer',
                  cell: (p) =>
                    h(
                      'div',
                      {},
                      shortId(p.peerId, 8),
                      h('div', { class: 'muted small' }, `operator `, shortId(p.operator, 4))
                    )
                },
                {
                  title: 'Connection',
                  cell: (p) =>
                    p.connection
                      ? badge(p.connection, p.connection === 'direct' ? 'ok' : 'warn')
                      : badge('not connected')
                },
                { title: 'Reachability', cell: (p) => (p.reachability ? reach(p.reachability) : '—') },
                {
                  title: 'Models',
                  cell: (p) =>
                    p.models.length ? p.models.join(', ') : h('span', { class: 'muted' }, 'routes only')
                },
                { title: 'Adapters', cell: (p) => adapters(p.adapters) },
                { title: 'Load', num: true, cell: (p) => `${p.queueDepth} queued · ${p.freeSlots} free` },
                {
                  title: 'Price / 1k tokens',
                  num: true,
                  cell: (p) => (p.pricePer1kTokens === '0' ? 'free' : open(p.pricePer1kTokens, 9))
                },
                {
                  title: 'Advert',
                  cell: (p) =>
                    h(
                      'div',
                      {},
                      p.live ? badge('live', 'ok') : badge('expired', 'bad'),
                      h('div', { class: 'muted small' }, `received ${duration(p.ageMs)} ago`)
                    )
                }
              ],
              peers,
              { label: 'Peers' }
            )
      )
    )
  }
}
