// Playground: chat with any model or adapter on the network through this gateway's OpenAI API,
// streamed. When the answer is complete it shows where it came from: the datanet spans it
// quotes highlighted per contributor, the contributors' shares, and the receipt, checked by the
// node's offline verifier.
import { api, apiKey, badge, card, empty, h, ms, open, PALETTE, pct, SOFT, shortId } from './lib.js'
import { verdict } from './page-jobs.js'

const state = { models: null, error: null }

function modelLabel(m) {
  const o = m.openlora
  const where = o.local ? `here (${o.local})` : `${o.nodes.length} node${o.nodes.length === 1 ? '' : 's'}`
  const price =
    o.minPricePer1kTokens && o.minPricePer1kTokens !== '0'
      ? ` · from ${open(o.minPricePer1kTokens, 9)}/1k`
      : ''
  const name = o.kind === 'adapter' ? `adapter ${o.aliases[0] ?? `${m.id.slice(0, 14)}…`} on ${m.root}` : m.id
  return `${name} — ${where}${price}`
}

async function* sse(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let buf = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buf += value
    let i
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i)
      buf = buf.slice(i + 2)
      for (const line of block.split('\n')) if (line.startsWith('data: ')) yield line.slice(6)
    }
  }
}

/** Answer text with the spans found in it highlighted; returns how many were placed. */
function highlight(box, text, spans) {
  const ranges = []
  let from = 0
  for (const s of spans) {
    if (!s.text) continue
    for (const t of [s.text, s.text.trim()]) {
      if (!t) continue
      const at = text.indexOf(t, from)
      if (at >= 0) {
        ranges.push({ start: at, end: at + t.length, s })
        from = at + t.length
        break
      }
    }
  }
  const out = []
  let pos = 0
  for (const r of ranges) {
    if (r.start > pos) out.push(text.slice(pos, r.start))
    out.push(
      h(
        'mark',
        {
          class: 'span',
          style: {
            background: SOFT[r.s.color % SOFT.length],
            boxShadow: `inset 0 -2px 0 ${PALETTE[r.s.color % PALETTE.length]}`
          },
          title: `datanet ${r.s.datanet.slice(0, 10)}… v${r.s.version} · contributor ${r.s.contributor}`
        },
        text.slice(r.start, r.end)
      )
    )
    pos = r.end
  }
  if (pos < text.length) out.push(text.slice(pos))
  box.replaceChildren(...out)
  return ranges.length
}

function attributionView(ext, answerBox, text) {
  const summary = ext.attribution.summary
  const proof = ext.attribution.proof
  const colors = new Map(summary.contributors.map((c, i) => [c.address.toLowerCase(), i]))
  const info = h('p', { class: 'muted small', 'data-testid': 'span-count' })
  const view = h(
    'div',
    { 'data-testid': 'attribution' },
    summary.datanets.length === 0
      ? null
      : h(
          'p',
          { class: 'small' },
          badge(summary.method, 'accent'),
          summary.method === 'spans'
            ? ' output spans matched in the datanets below'
            : ' shares from the adapter’s declared provenance'
        ),
    summary.datanets.length === 0
      ? empty('No attribution', 'This answer was made by a base model or an adapter without provenance.')
      : [
          h('h2', {}, 'Datanets'),
          h(
            'ul',
            {},
            summary.datanets.map((d) => h('li', {}, shortId(d.id, 8), ` — ${pct(d.bp)}`))
          ),
          h('h2', {}, 'Contributors'),
          h(
            'div',
            {},
            summary.contributors.map((c, i) =>
              h(
                'div',
                { class: 'row', style: { alignItems: 'center', margin: '4px 0' } },
                h(
                  'span',
                  { style: { minWidth: '190px' } },
                  h('span', { class: 'swatch', style: { background: PALETTE[i % PALETTE.length] } }),
                  shortId(c.address, 6)
                ),
                h(
                  'div',
                  { class: 'bar', style: { flex: '1' } },
                  h('span', { style: { width: `${c.bp / 100}%`, background: PALETTE[i % PALETTE.length] } })
                ),
                h('strong', {}, pct(c.bp))
              )
            )
          ),
          info
        ]
  )
  if (proof?.spans?.length) {
    api('/ui/api/spans', {
      model: ext.receipt.body.modelId,
      spans: proof.spans.map((s) => ({ tokens: s.tokens }))
    })
      .then(({ texts }) => {
        const spans = proof.spans
          .map((s, i) => ({
            text: texts[i],
            datanet: s.datanet,
            version: s.version,
            contributor: s.contribution.contributor,
            color: colors.get(s.contribution.contributor) ?? 0,
            offset: s.outputOffset
          }))
          .sort((a, b) => a.offset - b.offset)
        const placed = texts.some((t) => t !== null) ? highlight(answerBox, text, spans) : 0
        info.textContent = placed
          ? `${placed} of ${proof.spans.length} quoted spans highlighted in the answer (hover one for its datanet and contributor).`
          : `${proof.spans.length} quoted spans (this node does not serve the model, so it cannot place them in the text).`
      })
      .catch((err) => (info.textContent = `spans: ${err.message}`))
  }
  return view
}

async function send(form, out) {
  const f = new FormData(form)
  const chat = f.get('mode') === 'chat'
  const prompt = String(f.get('prompt') ?? '')
  const body = {
    model: f.get('model'),
    max_tokens: Number(f.get('max_tokens')),
    temperature: Number(f.get('temperature')),
    stream: true,
    ...(chat ? { messages: [{ role: 'user', content: prompt }] } : { prompt })
  }
  const answer = h('div', { class: 'answer streaming', 'data-testid': 'answer' })
  const status = h('p', { class: 'muted small' }, 'Waiting for a node to accept the job…')
  const side = h('div')
  out.replaceChildren(
    h('div', { class: 'grid wide' }, card('Answer', answer, status), card('Attribution & receipt', side))
  )
  side.append(h('p', { class: 'muted' }, 'Shown when the answer is complete.'))
  const t0 = performance.now()
  let first = null
  let text = ''
  let ext = null
  const button = form.querySelector('button')
  button.disabled = true
  try {
    const k = apiKey()
    const res = await fetch(chat ? '/v1/chat/completions' : '/v1/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(k ? { authorization: `Bearer ${k}` } : {}) },
      body: JSON.stringify(body)
    })
    if (!res.ok) throw new Error((await res.json().catch(() => ({})))?.error?.message ?? `HTTP ${res.status}`)
    status.textContent = 'Streaming…'
    for await (const data of sse(res)) {
      if (data === '[DONE]') break
      const c = JSON.parse(data)
      if (c.error) throw new Error(c.error.message)
      const piece = chat ? (c.choices[0]?.delta?.content ?? '') : (c.choices[0]?.text ?? '')
      if (piece) {
        first ??= performance.now() - t0
        text += piece
        answer.textContent = text
      }
      if (c.openlora) ext = c.openlora
    }
  } catch (err) {
    answer.classList.remove('streaming')
    status.replaceChildren(h('span', { class: 'failed', role: 'alert' }, err.message))
    button.disabled = false
    return
  }
  answer.classList.remove('streaming')
  button.disabled = false
  if (!ext) {
    status.textContent = 'The stream ended without a receipt.'
    return
  }
  const b = ext.receipt.body
  status.replaceChildren(
    `${b.promptTokens} → ${b.outputTokens} tokens · first token after ${ms(first)} · `,
    b.voucher ? `paid ${open(ext.paid, 9)}` : 'free',
    ' · served by ',
    shortId(ext.node.peerId, 5),
    ext.node.route.length > 1
      ? ` via ${ext.node.route.length - 1} hop${ext.node.route.length > 2 ? 's' : ''}`
      : ''
  )
  const receiptLine = h('p', { 'data-testid': 'receipt' }, 'Receipt: checking…')
  side.replaceChildren(receiptLine, attributionView(ext, answer, text))
  const v = await api('/ui/api/verify', {
    receipt: ext.receipt,
    expect: { jobId: ext.jobId, peerId: ext.node.peerId }
  }).catch((err) => ({ ok: false, check: 'request', field: '', message: err.message }))
  receiptLine.replaceChildren(
    'Receipt ',
    shortId(b.jobId, 6),
    ': ',
    verdict(v),
    h(
      'span',
      { class: 'muted small' },
      v.ok
        ? ` — signed by peer ${b.peerId.slice(-6)} and operator ${b.operator.slice(0, 8)}…`
        : ` — ${v.message}`
    )
  )
}

/** The model named by `#/playground?model=ID` (the ModelFactory's link), else the first adapter. */
function preselected(models) {
  const wanted = new URLSearchParams(location.hash.split('?')[1] ?? '').get('model')
  const i = wanted ? models.findIndex((m) => m.id === wanted) : -1
  return i >= 0 ? i : models.findIndex((x) => x.openlora.kind === 'adapter')
}

function form(models) {
  const out = h('div')
  const f = h(
    'form',
    {
      'aria-label': 'Playground',
      onsubmit: (e) => {
        e.preventDefault()
        void send(f, out)
      }
    },
    h(
      'div',
      { class: 'row' },
      h(
        'label',
        { class: 'field', style: { flex: '1', minWidth: '280px' } },
        'Model or adapter',
        h(
          'select',
          { name: 'model', 'aria-label': 'Model or adapter' },
          models.map((m, i) =>
            h('option', { value: m.id, selected: i === preselected(models) }, modelLabel(m))
          )
        )
      ),
      h(
        'label',
        { class: 'field' },
        'Mode',
        h(
          'select',
          { name: 'mode', 'aria-label': 'Mode' },
          h('option', { value: 'chat' }, 'Chat'),
          h('option', { value: 'completion' }, 'Completion')
        )
      ),
      h(
        'label',
        { class: 'field' },
        'Max tokens',
        h('input', {
          name: 'max_tokens',
          type: 'number',
          min: 1,
          max: 4096,
          value: 64,
          style: { width: '100px' }
        })
      ),
      h(
        'label',
        { class: 'field' },
        'Temperature',
        h('input', {
          name: 'temperature',
          type: 'number',
          min: 0,
          max: 2,
          step: 0.1,
          value: 0,
          style: { width: '90px' }
        })
      )
    ),
    h(
      'label',
      { class: 'field', style: { marginTop: '12px' } },
      'Prompt',
      h(
        'textarea',
        { name: 'prompt', 'aria-label': 'Prompt', required: true },
        'Tell me about the lighthouse keeper.'
      )
    ),
    h(
      'div',
      { class: 'row', style: { marginTop: '12px' } },
      h('button', { type: 'submit' }, 'Send'),
      h('span', { class: 'muted small' }, 'Temperature 0 is greedy: the same prompt gives the same answer.')
    )
  )
  return h('div', {}, card(null, f), out)
}

export default {
  title: 'Playground',
  mount() {
    const el = h(
      'div',
      {},
      h('h1', {}, 'Playground'),
      h(
        'p',
        { class: 'lede' },
        'Chat with any model or adapter on the network through this node’s OpenAI-compatible API. Each answer comes with its attribution and a verified receipt.'
      )
    )
    const body = h('p', { class: 'muted' }, 'Loading models…')
    el.append(body)
    api('/v1/models').then(
      (r) => {
        state.models = r.data
        body.replaceWith(
          r.data.length === 0
            ? empty(
                'No model on this node or its peers',
                'Serve one (',
                h('code', {}, 'infer.models'),
                ') or join a network whose nodes do (',
                h('code', {}, '--bootstrap ADDR'),
                ').'
              )
            : form(r.data)
        )
      },
      (err) => body.replaceWith(h('div', { class: 'error-box', role: 'alert' }, err.message))
    )
    return el
  }
}
