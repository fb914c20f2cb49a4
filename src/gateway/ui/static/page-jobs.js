// Jobs: the recent jobs this node served or forwarded, newest first, arriving live. "Verify"
// has the node run the offline receipt check (schema, amounts, token hashes, both signatures).
import { api, badge, card, empty, h, ms, open, shortId, table, time } from './lib.js'

const verified = new Map()

export async function verifyJob(j) {
  try {
    const v = await api('/ui/api/verify', { receipt: j.receipt, expect: j.expect })
    return v
  } catch (err) {
    return { ok: false, check: 'request', field: '', message: err.message }
  }
}

export function verdict(v) {
  return v.ok
    ? h('span', { class: 'verified', role: 'status' }, '✓ verified')
    : h(
        'span',
        { class: 'failed', role: 'status', title: v.message },
        `✗ ${v.check}${v.field ? ` ${v.field}` : ''}`
      )
}

function verifyCell(j) {
  const done = verified.get(j.jobId)
  if (done) return verdict(done)
  const cell = h('span')
  const btn = h(
    'button',
    {
      class: 'secondary',
      onclick: async () => {
        btn.disabled = true
        btn.textContent = 'Checking…'
        const v = await verifyJob(j)
        verified.set(j.jobId, v)
        cell.replaceChildren(verdict(v))
      }
    },
    'Verify'
  )
  cell.append(btn)
  return cell
}

let list = []
let fresh = new Set()
let el = null

function render() {
  const served = list.filter((j) => j.role === 'served').length
  const node = h(
    'div',
    {},
    h('h1', {}, 'Jobs'),
    h(
      'p',
      { class: 'lede' },
      `The last ${list.length} jobs (${served} served here, ${list.length - served} forwarded), newest first. New jobs appear as they finish.`
    ),
    card(
      'Recent jobs',
      list.length === 0
        ? empty(
            'No jobs yet',
            'Send one from the ',
            h('a', { href: '#/playground' }, 'Playground'),
            ', with any OpenAI client pointed at ',
            h('code', {}, `${location.origin}/v1`),
            ', or from another node.'
          )
        : table(
            [
              {
                title: 'Finished',
                cell: (j) =>
                  h('div', {}, time(j.at), h('div', { class: 'muted small mono' }, j.jobId.slice(0, 10)))
              },
              {
                title: 'Adapter · model',
                cell: (j) =>
                  h(
                    'div',
                    {},
                    j.adapter ? shortId(j.adapter, 6) : h('span', { class: 'muted' }, 'base model'),
                    h('div', { class: 'muted small' }, j.model)
                  )
              },
              {
                title: 'Role',
                cell: (j) =>
                  h(
                    'div',
                    {},
                    badge(j.role, j.role === 'served' ? 'ok' : 'accent'),
                    h(
                      'div',
                      { class: 'muted small' },
                      j.client === 'gateway' ? 'from this gateway' : ['from ', shortId(j.client, 4)]
                    )
                  )
              },
              { title: 'Tokens', num: true, cell: (j) => `${j.promptTokens} → ${j.outputTokens}` },
              { title: 'TTFT', num: true, cell: (j) => ms(j.ttftMs) },
              { title: 'Total', num: true, cell: (j) => ms(j.totalMs) },
              {
                title: 'Paid',
                num: true,
                cell: (j) => (j.paid === '0' ? h('span', { class: 'muted' }, 'free') : open(j.paid, 9))
              },
              {
                title: 'Attribution',
                cell: (j) =>
                  j.attribution.datanets
                    ? `${j.attribution.method}: ${j.attribution.datanets} datanet · ${j.attribution.contributors} contrib.`
                    : h('span', { class: 'muted' }, 'none')
              },
              { title: 'Receipt', cell: verifyCell }
            ],
            list,
            { label: 'Jobs', rowClass: (j) => (fresh.has(j.jobId) ? 'fresh' : null) }
          )
    )
  )
  fresh = new Set()
  return node
}

export default {
  title: 'Jobs',
  mount() {
    el = h('div', {}, h('p', { class: 'muted' }, 'Loading…'))
    api('/ui/api/jobs').then(
      (d) => {
        list = d.jobs
        el.replaceChildren(render())
      },
      (err) => el.replaceChildren(h('div', { class: 'error-box', role: 'alert' }, err.message))
    )
    return el
  },
  onEvent(type, job) {
    if (type !== 'job' || !el) return
    list = [job, ...list.filter((j) => j.jobId !== job.jobId)].slice(0, 200)
    fresh.add(job.jobId)
    el.replaceChildren(render())
  },
  leave() {
    el = null
  }
}
