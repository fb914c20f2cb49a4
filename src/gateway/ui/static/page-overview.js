// Overview: who this node is, how it is reached, what it runs on and serves.
import { api, badge, bytes, card, duration, empty, h, open, shortId, stat, table } from './lib.js'

const REACH = {
  public: ['direct (public address)', 'ok'],
  relayed: ['relayed (behind NAT)', 'warn'],
  local: ['local network only', '']
}

export function reach(r) {
  const [label, kind] = REACH[r] ?? [r, '']
  return badge(label, kind)
}

export default {
  title: 'Overview',
  refreshOn: ['tick', 'job'],
  load: () => api('/ui/api/overview'),
  render(o) {
    const hw = o.hardware
    const gpus = hw.gpus.length
      ? hw.gpus.map((g) => `${g.name} (${bytes(g.memoryMb * 1024 * 1024)})`).join(', ')
      : 'none'
    return h(
      'div',
      {},
      h('h1', {}, 'Overview'),
      h(
        'p',
        { class: 'lede' },
        'This node at a glance: identity, reachability, hardware and what it serves. Updates live.'
      ),
      h(
        'div',
        { class: 'grid' },
        stat('Uptime', duration(o.uptimeMs), `since ${new Date(o.startedAt).toLocaleString()}`),
        stat(
          'Reachability',
          reach(o.reachability),
          `${o.connections.direct} direct · ${o.connections.relayed} relayed connections`
        ),
        stat('Peers known', String(o.peersKnown), 'from capability adverts'),
        stat(
          'Load',
          `${o.load.queueDepth} queued`,
          `${o.load.freeSlots} free slots · ${o.jobsSeen} jobs seen`
        )
      ),
      h(
        'div',
        { class: 'grid wide' },
        card(
          'Identity',
          h(
            'dl',
            { class: 'kv' },
            h('dt', {}, 'Peer id'),
            h('dd', { 'data-testid': 'peer-id' }, shortId(o.peerId, 10)),
            h('dt', {}, 'Operator'),
            h('dd', {}, shortId(o.operator, 8), h('span', { class: 'muted small' }, ' receives rewards')),
            h('dt', {}, 'Version'),
            h('dd', {}, o.version ?? '—'),
            h('dt', {}, 'Price'),
            h('dd', {}, o.pricePer1kTokens === '0' ? 'free' : `${open(o.pricePer1kTokens, 9)} per 1k tokens`),
            h('dt', {}, 'Chain'),
            h(
              'dd',
              {},
              o.chain
                ? [
                    `chain ${o.chain.chainId}${o.chain.local ? ' (local anvil)' : ''} · Settlement `,
                    shortId(o.chain.settlement)
                  ]
                : 'none (free jobs only)'
            )
          )
        ),
        card(
          'Hardware',
          h(
            'dl',
            { class: 'kv' },
            h('dt', {}, 'CPU'),
            h('dd', {}, `${hw.cpu.model} · ${hw.cpu.cores} cores`),
            h('dt', {}, 'Memory'),
            h('dd', {}, bytes(hw.cpu.ramMb * 1024 * 1024)),
            h('dt', {}, 'GPUs'),
            h('dd', {}, gpus),
            h('dt', {}, 'Runs on'),
            h('dd', {}, o.executionProvider.toUpperCase()),
            h('dt', {}, 'Adapters'),
            h(
              'dd',
              {},
              badge(`${o.adapters.hot} hot`, 'hot'),
              ' ',
              badge(`${o.adapters.warm} warm`, 'warm'),
              ' ',
              badge(`${o.adapters.cold} cold`, 'cold')
            )
          )
        )
      ),
      card(
        'Models',
        o.models.length === 0
          ? empty(
              'This node serves no model',
              'It routes jobs to peers. To serve, set ',
              h('code', {}, 'infer.models'),
              ' to a model directory (or run ',
              h('code', {}, 'npm start'),
              ' for the demo).'
            )
          : table(
              [
                { title: 'Model', cell: (m) => h('strong', {}, m.id) },
                { title: 'Family', cell: (m) => m.family },
                { title: 'Weights hash', cell: (m) => shortId(m.weightsHash) }
              ],
              o.models,
              { label: 'Models' }
            )
      ),
      card(
        'Addresses',
        o.addrs.length === 0
          ? empty('No listen addresses', 'Set ', h('code', {}, 'network.listen'), '.')
          : h(
              'ul',
              { class: 'mono small' },
              o.addrs.map((a) => h('li', {}, a))
            )
      )
    )
  }
}
