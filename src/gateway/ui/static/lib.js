// Shared helpers of the dashboard's pages: the API (with the gateway key, when one is needed),
// the live event stream, a tiny DOM builder (text goes in as text, never as HTML) and formats.

const KEY = 'openlora.apiKey'

export function apiKey() {
  return localStorage.getItem(KEY) ?? ''
}

function headers(extra = {}) {
  const k = apiKey()
  return k ? { authorization: `Bearer ${k}`, ...extra } : extra
}

/** Asks for a key when the gateway wants one (an admin one for admin routes); resolves once given. */
let asking = null
function askForKey(admin = false) {
  // calls refused at the same time wait for the same answer
  if (asking) return asking
  const bar = document.getElementById('keybar')
  bar
    .querySelector('label')
    .replaceChildren(
      ...(admin
        ? [
            'This needs the node’s admin token (',
            h('code', {}, '"token"'),
            ' in ',
            h('code', {}, 'DATA-DIR/admin.json'),
            ') or an admin key (',
            h('code', {}, 'openlora gateway keys add NAME --admin'),
            '):'
          ]
        : ['This gateway needs an API key (', h('code', {}, 'openlora gateway keys add NAME'), '):'])
    )
  bar.hidden = false
  asking = new Promise((resolve) => {
    document.getElementById('keyform').onsubmit = (e) => {
      e.preventDefault()
      localStorage.setItem(KEY, document.getElementById('apikey').value.trim())
      bar.hidden = true
      asking = null
      resolve()
    }
  })
  return asking
}

export class ApiError extends Error {
  constructor(message, status, code) {
    super(message)
    this.status = status
    this.code = code ?? null
  }
}

/** GET (or POST with `body`) a JSON endpoint of this gateway. */
export async function api(path, body) {
  for (;;) {
    const res = await fetch(path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const json = await res.json().catch(() => ({}))
    if (res.status === 401) {
      await askForKey(json?.error?.code === 'admin_required')
      continue
    }
    if (!res.ok)
      throw new ApiError(json?.error?.message ?? `${path}: HTTP ${res.status}`, res.status, json?.error?.code)
    return json
  }
}

/** Server-sent events over fetch (EventSource cannot send the key); reconnects by itself. */
export function subscribe(onEvent, onState) {
  let stopped = false
  const run = async () => {
    while (!stopped) {
      try {
        const res = await fetch('/ui/api/events', { headers: headers() })
        if (res.status === 401) {
          onState(false)
          await askForKey()
          continue
        }
        if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`)
        onState(true)
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
        let buf = ''
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          buf += value
          let i
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i)
            buf = buf.slice(i + 2)
            let type = 'message'
            let data = ''
            for (const line of block.split('\n')) {
              if (line.startsWith('event: ')) type = line.slice(7)
              else if (line.startsWith('data: ')) data += line.slice(6)
            }
            if (data) onEvent(type, JSON.parse(data))
          }
        }
      } catch {}
      onState(false)
      await new Promise((r) => setTimeout(r, 2000))
    }
  }
  void run()
  return () => {
    stopped = true
  }
}

/** h('td', { class: 'num' }, 'text', child): an element; strings become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
  return el
}

export function card(title, ...body) {
  return h('section', { class: 'card' }, title ? h('h2', {}, title) : null, ...body)
}

export function stat(label, value, sub) {
  return h(
    'div',
    { class: 'card stat' },
    h('div', { class: 'label' }, label),
    h('div', { class: 'value' }, value),
    sub ? h('div', { class: 'sub' }, sub) : null
  )
}

export function empty(title, ...what) {
  return h('div', { class: 'empty' }, h('strong', {}, title), ...what)
}

export function table(columns, rows, opts = {}) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { 'aria-label': opts.label },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          columns.map((c) => h('th', { class: c.num ? 'num' : null }, c.title))
        )
      ),
      h(
        'tbody',
        {},
        rows.map((r) =>
          h(
            'tr',
            { class: opts.rowClass?.(r) },
            columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.cell(r)))
          )
        )
      )
    )
  )
}

export function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}` }, text)
}

/** A long id shortened, full on hover, copied on click. */
export function shortId(id, keep = 6) {
  if (!id) return '—'
  const s = id.length > keep * 2 + 3 ? `${id.slice(0, keep + 2)}…${id.slice(-keep)}` : id
  return h(
    'span',
    { class: 'mono copy', title: `${id} (click to copy)`, onclick: () => navigator.clipboard?.writeText(id) },
    s
  )
}

const WEI = 10n ** 18n
/** wei (decimal string) as OPEN with up to `digits` decimals. */
export function open(wei, digits = 6) {
  const v = BigInt(wei ?? '0')
  const whole = v / WEI
  const frac = (v % WEI).toString().padStart(18, '0').slice(0, digits).replace(/0+$/, '')
  const tiny = v > 0n && whole === 0n && !frac
  return tiny ? `${v} wei` : `${whole}${frac ? `.${frac}` : ''} OPEN`
}

export function openNumber(wei) {
  return Number(BigInt(wei ?? '0')) / 1e18
}

export function duration(ms) {
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m ${s % 60}s`
  const hr = Math.floor(m / 60)
  return hr < 48 ? `${hr}h ${m % 60}m` : `${Math.floor(hr / 24)}d ${hr % 24}h`
}

export function ago(t) {
  return `${duration(Math.max(0, Date.now() - t))} ago`
}

export function bytes(n) {
  if (n < 1024) return `${n} B`
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(2)} GiB`
}

export function ms(v) {
  return v === null || v === undefined ? '—' : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`
}

export function pct(bp) {
  return `${(bp / 100).toFixed(bp % 100 === 0 ? 0 : 2)}%`
}

export function time(t) {
  return new Date(t).toLocaleTimeString()
}

export const PALETTE = [
  '#4f46e5',
  '#0891b2',
  '#d97706',
  '#db2777',
  '#059669',
  '#7c3aed',
  '#dc2626',
  '#65a30d'
]
export const SOFT = ['#e0e7ff', '#cffafe', '#fde68a', '#fbcfe8', '#a7f3d0', '#ede9fe', '#fecaca', '#d9f99d']
