// ModelFactory: train a LoRA adapter on this node without writing code. Pick a base model the
// node serves and the datanets it holds, a preset (or a few hyperparameters), start; the loss
// chart grows live (the job route is polled while a job runs); when it is done the adapter is
// already served here: try it in the Playground, or register it on-chain with the datanets of its
// signed training record. The job routes are admin routes (docs/TRAINING.md).
import { field, newJobForm } from './factory-form.js'
import { api, badge, card, empty, h, shortId, table, time } from './lib.js'
import uPlot from './vendor/uplot.js'

const POLL_MS = 800
const STATE_KIND = { queued: '', running: 'accent', done: 'ok', failed: 'bad' }

const state = { info: null, jobs: [], selected: null, timer: null, chart: null, panel: null, list: null }

const active = (j) => j.state === 'queued' || j.state === 'running'
const lastLoss = (j) => (j.losses.length ? j.losses.at(-1).toFixed(4) : '—')

function datanetNames(job) {
  const ids = [job.request.datanet, ...(job.request.moreDatanets ?? [])].map((d) => d.id)
  return ids.map((id) => state.info?.datanets.find((d) => d.id === id)?.name ?? `${id.slice(0, 10)}…`)
}

function lossChart(job) {
  const box = h('div', { class: 'chart', 'data-testid': 'loss-chart' })
  const data = () => [job.losses.map((_, i) => i), job.losses]
  const opts = {
    width: 800,
    height: 260,
    cursor: { drag: { x: false, y: false } },
    legend: { live: false },
    scales: { x: { time: false, range: () => [0, Math.max(1, job.steps - 1)] } },
    // whole steps on the x axis, however few there are
    axes: [
      { label: 'step', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] },
      { label: 'loss', size: 60 }
    ],
    series: [
      { label: 'step' },
      { label: 'training loss', stroke: '#4f46e5', width: 2, points: { show: true, size: 4 } }
    ]
  }
  requestAnimationFrame(() => {
    const u = new uPlot(opts, data(), box)
    const fit = () => u.setSize({ width: Math.max(300, box.clientWidth), height: 260 })
    fit()
    new ResizeObserver(fit).observe(box)
    state.chart = { id: job.id, u, job }
  })
  return box
}

function registrationView(job) {
  const r = job.registration
  if (!r) return null
  return h(
    'p',
    { class: 'verified' },
    `✓ Registered on-chain as ${r.adapterId.slice(0, 12)}… by ${r.owner.slice(0, 10)}…, declaring ${r.datanets.length} datanet${r.datanets.length === 1 ? '' : 's'} (`,
    r.datanets.map((d) => `${d.weightBps / 100}%`).join(' / '),
    ') · tx ',
    shortId(r.tx, 6)
  )
}

function resultView(job) {
  if (job.state === 'failed')
    return h('div', { class: 'error-box', role: 'alert' }, `Training failed: ${job.error}`)
  if (job.state !== 'done') return null
  const out = h('div', { 'data-testid': 'registration' }, registrationView(job))
  const fee = h('input', {
    type: 'text',
    inputmode: 'numeric',
    'aria-label': 'Fee (wei per 1k tokens)',
    value: '0',
    style: { width: '120px' }
  })
  const register = h(
    'button',
    {
      class: 'secondary',
      disabled: job.registration !== null,
      onclick: async () => {
        register.disabled = true
        out.replaceChildren(h('p', { class: 'muted' }, 'Registering on-chain (commit, then reveal)…'))
        try {
          const j = await api(`/v1/training/jobs/${job.id}/register`, {
            feePer1kTokens: fee.value.trim() || '0'
          })
          Object.assign(job, j)
          out.replaceChildren(registrationView(j))
          state.list?.replaceChildren(jobsTable(state.jobs) ?? '')
        } catch (err) {
          out.replaceChildren(
            h('div', { class: 'error-box', role: 'alert' }, `Not registered: ${err.message}`)
          )
          register.disabled = false
        }
      }
    },
    'Register on-chain'
  )
  return h(
    'div',
    {},
    h(
      'dl',
      { class: 'kv' },
      h('dt', {}, 'Adapter'),
      h('dd', { 'data-testid': 'adapter-cid' }, shortId(job.cid, 10)),
      h('dt', {}, 'Trained on'),
      h('dd', {}, datanetNames(job).join(', ')),
      h('dt', {}, 'Base model'),
      h('dd', {}, job.request.model)
    ),
    h(
      'div',
      { class: 'row', style: { alignItems: 'end' } },
      h(
        'a',
        { class: 'button', href: `#/playground?model=${encodeURIComponent(job.cid)}` },
        'Try in playground'
      ),
      field('Fee (wei per 1k tokens)', fee),
      register
    ),
    out
  )
}

function progressLine(job) {
  return h(
    'p',
    { 'data-testid': 'job-progress' },
    badge(job.state, STATE_KIND[job.state]),
    ` step ${job.losses.length} of ${job.steps} · loss ${lastLoss(job)} · started ${time(job.createdAt)}`
  )
}

function jobPanel(job) {
  if (!job)
    return empty('No training job yet', 'Pick a model, datanets and a preset above, then Start training.')
  return h('div', { 'data-job': job.id }, progressLine(job), lossChart(job), resultView(job))
}

function jobsTable(jobs) {
  if (jobs.length === 0) return null
  return table(
    [
      { title: 'Started', cell: (j) => time(j.createdAt) },
      { title: 'Model', cell: (j) => j.request.model },
      { title: 'Datanets', cell: (j) => datanetNames(j).join(', ') },
      { title: 'Steps', num: true, cell: (j) => `${j.losses.length} / ${j.steps}` },
      { title: 'Loss', num: true, cell: (j) => lastLoss(j) },
      {
        title: 'State',
        cell: (j) => [badge(j.state, STATE_KIND[j.state]), j.registration ? badge('on-chain', 'ok') : null]
      },
      { title: 'Adapter', cell: (j) => (j.cid ? shortId(j.cid, 6) : '—') },
      {
        title: '',
        cell: (j) =>
          h(
            'button',
            { class: 'secondary', onclick: () => select(j.id), disabled: j.id === state.selected },
            j.id === state.selected ? 'Shown' : 'Show'
          )
      }
    ],
    jobs,
    { label: 'Training jobs', rowClass: (j) => (j.id === state.selected ? 'fresh' : null) }
  )
}

function select(id) {
  state.selected = id
  draw(true)
}

/** Redraws the job panel (only when the job's state changed; new losses go into the chart) and the list. */
function draw(force = false) {
  if (!state.panel) return
  const job = state.jobs.find((j) => j.id === state.selected) ?? state.jobs[0]
  if (job) state.selected = job.id
  const shown = state.panel.firstChild?.dataset?.job
  const chart = state.chart
  if (!force && job && shown === job.id && chart?.id === job.id && chart.job.state === job.state) {
    chart.job.losses = job.losses
    chart.u.setData([job.losses.map((_, i) => i), job.losses])
    state.panel.querySelector('[data-testid=job-progress]').replaceWith(progressLine(job))
  } else {
    state.chart = null
    state.panel.replaceChildren(jobPanel(job))
  }
  state.list.replaceChildren(jobsTable(state.jobs) ?? '')
}

async function refresh() {
  const { data } = await api('/v1/training/jobs')
  state.jobs = data
  draw()
  clearTimeout(state.timer)
  // polling stops when the page is left (leave() drops the panel) and when no job is left to watch
  if (state.panel && data.some(active)) state.timer = setTimeout(() => refresh().catch(showError), POLL_MS)
}

function showError(err) {
  state.panel?.replaceChildren(h('div', { class: 'error-box', role: 'alert' }, err.message))
}

function whyNot(info) {
  if (!info.offered)
    return empty(
      'This node does not train adapters',
      'Start it with ',
      h('code', {}, '--set training.offer=true'),
      ' (training takes the cores it is given), then reload this page.'
    )
  if (!info.models.some((m) => m.trainable))
    return empty(
      'No base model here that the trainer supports',
      'Serve a checkpoint of a family the trainer supports (',
      h('code', {}, 'infer.models'),
      '; docs/TRAINING.md lists them).'
    )
  if (info.datanets.length === 0)
    return empty(
      'No datanets on this node',
      'Create one (',
      h('code', {}, 'openlora datanet create'),
      ', ',
      h('code', {}, 'contribute'),
      ', ',
      h('code', {}, 'publish'),
      ') or copy one from a peer (',
      h('code', {}, 'openlora datanet fetch'),
      ').'
    )
  return null
}

export default {
  title: 'ModelFactory',
  leave() {
    clearTimeout(state.timer)
    state.panel = null
    state.chart = null
  },
  mount() {
    const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'))
    api('/ui/api/factory').then(
      (info) => {
        state.info = info
        const why = whyNot(info)
        if (why) return body.replaceChildren(why)
        state.panel = h('div')
        state.list = h('div')
        body.replaceChildren(
          card(
            'New training job',
            newJobForm(info, (job) => {
              state.selected = job.id
              return refresh()
            })
          ),
          card('Training job', state.panel),
          card('Jobs', state.list)
        )
        refresh().catch(showError)
      },
      (err) => body.replaceChildren(h('div', { class: 'error-box', role: 'alert' }, err.message))
    )
    return h(
      'div',
      {},
      h('h1', {}, 'ModelFactory'),
      h(
        'p',
        { class: 'lede' },
        'Fine-tune a LoRA adapter on this node from the datanets it holds. The training is recorded and signed by the node, so the adapter’s outputs credit exactly these datanets’ contributors.'
      ),
      body
    )
  }
}
