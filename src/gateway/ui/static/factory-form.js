// ModelFactory's form (page-factory.js): base model, datanets, a preset or the hyperparameters by
// hand; submitting starts a job (POST /v1/training/jobs, an admin route) and hands it to the page.
import { api, badge, h } from './lib.js'

const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
/** What each preset sets; batch and sequence length keep a step's cost bounded on big datanets. */
export const PRESETS = {
  quick: { label: 'Quick — a first look', steps: 30, lr: 0.001, rank: 8, targets: ['q_proj', 'v_proj'] },
  standard: { label: 'Standard', steps: 200, lr: 0.0005, rank: 8, targets: ['q_proj', 'v_proj'] },
  thorough: { label: 'Thorough — every projection', steps: 500, lr: 0.0002, rank: 16, targets: TARGETS }
}

export function field(label, input) {
  return h('label', { class: 'field' }, label, input)
}

function numberInput(name, label, attrs) {
  return h('input', { name, type: 'number', 'aria-label': label, style: { width: '120px' }, ...attrs })
}

function applyPreset(form, id) {
  const p = PRESETS[id]
  if (!p) return
  form.elements.steps.value = p.steps
  form.elements.lr.value = p.lr
  form.elements.rank.value = p.rank
  for (const t of TARGETS) form.elements[`target-${t}`].checked = p.targets.includes(t)
}

function request(form) {
  const f = form.elements
  const datanets = [...form.querySelectorAll('input[name=datanet]:checked')].map((c) => ({
    id: c.value,
    version: Number(c.dataset.version)
  }))
  if (datanets.length === 0) throw new Error('Pick at least one datanet to train on.')
  const targets = TARGETS.filter((t) => f[`target-${t}`].checked)
  if (targets.length === 0) throw new Error('Pick at least one projection to adapt.')
  const rank = Number(f.rank.value)
  return {
    model: f.model.value,
    datanet: datanets[0],
    ...(datanets.length > 1 ? { moreDatanets: datanets.slice(1) } : {}),
    steps: Number(f.steps.value),
    lr: Number(f.lr.value),
    optimizer: f.optimizer.value,
    rank,
    alpha: 2 * rank,
    targets,
    batch: Number(f.batch.value),
    seqLen: Number(f.seqLen.value),
    // fp32 is the default: left out, so the request is what it was before base formats
    ...(f.baseFormat.value !== 'fp32' ? { baseFormat: f.baseFormat.value } : {}),
    seed: Number(f.seed.value)
  }
}

export function newJobForm(info, onStarted) {
  const models = info.models.filter((m) => m.trainable)
  const error = h('p', { class: 'failed', role: 'alert', hidden: true })
  const form = h(
    'form',
    {
      'aria-label': 'New training job',
      onsubmit: async (e) => {
        e.preventDefault()
        error.hidden = true
        const button = form.querySelector('button[type=submit]')
        button.disabled = true
        try {
          await onStarted(await api('/v1/training/jobs', request(form)))
        } catch (err) {
          error.textContent = err.message
          error.hidden = false
        } finally {
          button.disabled = false
        }
      },
      // a field changed by hand makes the settings the user's own
      oninput: (e) => {
        if (e.target.name !== 'preset' && e.target.closest('[data-preset-field]'))
          form.elements.preset.value = 'custom'
      }
    },
    h(
      'div',
      { class: 'row' },
      field(
        'Base model',
        h(
          'select',
          { name: 'model', 'aria-label': 'Base model' },
          info.models.map((m) =>
            h(
              'option',
              { value: m.id, disabled: !m.trainable },
              m.trainable ? `${m.id} (${m.family})` : `${m.id} — ${m.family} does not train yet`
            )
          )
        )
      ),
      field(
        'Preset',
        h(
          'select',
          { name: 'preset', 'aria-label': 'Preset', onchange: (e) => applyPreset(form, e.target.value) },
          Object.entries(PRESETS).map(([id, p]) => h('option', { value: id }, p.label)),
          h('option', { value: 'custom' }, 'Custom')
        )
      )
    ),
    h(
      'fieldset',
      { class: 'choices' },
      h('legend', {}, 'Datanets to train on'),
      info.datanets.map((d, i) =>
        h(
          'label',
          { class: 'choice' },
          h('input', {
            type: 'checkbox',
            name: 'datanet',
            value: d.id,
            'data-version': d.version,
            checked: i === 0
          }),
          ` ${d.name} `,
          h('span', { class: 'muted small' }, `v${d.version} · ${d.records} records `),
          d.onChain === true
            ? badge('on-chain', 'ok')
            : d.onChain === false
              ? badge('not on-chain', 'warn')
              : null
        )
      )
    ),
    h(
      'div',
      { class: 'row', 'data-preset-field': true },
      field('Steps', numberInput('steps', 'Steps', { min: 1, max: 2000, required: true })),
      field(
        'Learning rate',
        numberInput('lr', 'Learning rate', { min: 0.000001, max: 1, step: 'any', required: true })
      ),
      field('Rank', numberInput('rank', 'Rank', { min: 1, max: 64, required: true })),
      field(
        'Optimizer',
        h(
          'select',
          { name: 'optimizer', 'aria-label': 'Optimizer' },
          h('option', { value: 'adamw' }, 'AdamW'),
          h('option', { value: 'sgd' }, 'SGD')
        )
      )
    ),
    h(
      'fieldset',
      { class: 'choices', 'data-preset-field': true },
      h('legend', {}, 'Projections to adapt'),
      TARGETS.map((t) =>
        h(
          'label',
          { class: 'choice' },
          h('input', { type: 'checkbox', name: `target-${t}`, value: t }),
          ` ${t}`
        )
      )
    ),
    h(
      'details',
      {},
      h('summary', {}, 'More settings'),
      h(
        'div',
        { class: 'row' },
        field('Batch (sequences per step)', numberInput('batch', 'Batch', { min: 1, max: 64, value: 4 })),
        field(
          'Sequence length (tokens)',
          numberInput('seqLen', 'Sequence length', { min: 2, max: 4096, value: 256 })
        ),
        field('Seed', numberInput('seed', 'Seed', { min: 0, max: 2 ** 31 - 1, value: 1 })),
        field(
          'Base weights',
          h(
            'select',
            { name: 'baseFormat', 'aria-label': 'Base weights' },
            h('option', { value: 'fp32' }, 'fp32 (exact)'),
            h('option', { value: 'int8' }, 'int8 (as an int8 node serves it)'),
            h('option', { value: 'int4' }, 'int4 (QLoRA-style, least memory)')
          )
        )
      )
    ),
    h(
      'div',
      { class: 'row', style: { marginTop: '12px' } },
      h('button', { type: 'submit', disabled: models.length === 0 }, 'Start training'),
      h('span', { class: 'muted small' }, 'One job runs at a time; others wait in the queue.')
    ),
    error
  )
  applyPreset(form, 'quick')
  return form
}
