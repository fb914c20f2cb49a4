// The dashboard shell: a nav bar, hash routes (#/overview, #/jobs, …), one live event stream
// shared by the pages. Each page module exports { title, load(), render(data, ctx) } and says
// which events make it reload (`refreshOn`); the Playground keeps its own state instead.
import { h, subscribe } from './lib.js'
import adapters from './page-adapters.js'
import datanets from './page-datanets.js'
import earnings from './page-earnings.js'
import factory from './page-factory.js'
import jobs from './page-jobs.js'
import network from './page-network.js'
import overview from './page-overview.js'
import playground from './page-playground.js'

const PAGES = { overview, network, adapters, jobs, earnings, datanets, playground, factory }
const view = document.getElementById('view')
const nav = document.getElementById('nav')
let current = null
let generation = 0

for (const [id, p] of Object.entries(PAGES)) nav.append(h('a', { href: `#/${id}`, 'data-page': id }, p.title))

function pageId() {
  const id = location.hash.replace(/^#\/?/, '').split('?')[0]
  return PAGES[id] ? id : 'overview'
}

async function show(reload = false) {
  const id = pageId()
  const page = PAGES[id]
  const gen = ++generation
  for (const a of nav.querySelectorAll('a')) a.toggleAttribute('aria-current', a.dataset.page === id)
  if (a11yCurrent(id)) document.title = `${page.title} · OpenLoRA node`
  if (!reload || current?.id !== id) {
    current?.page.leave?.()
    current = { id, page }
    if (page.mount) {
      view.replaceChildren(page.mount())
      return
    }
    view.replaceChildren(h('p', { class: 'muted' }, 'Loading…'))
  }
  try {
    const data = await page.load()
    if (gen !== generation) return
    const y = window.scrollY
    view.replaceChildren(page.render(data))
    window.scrollTo(0, y)
  } catch (err) {
    if (gen !== generation) return
    view.replaceChildren(
      h('h1', {}, page.title),
      h('div', { class: 'error-box', role: 'alert' }, `Could not load this page: ${err.message}`)
    )
  }
}

function a11yCurrent(id) {
  for (const a of nav.querySelectorAll('a')) if (a.dataset.page === id) a.setAttribute('aria-current', 'page')
  return true
}

window.addEventListener('hashchange', () => void show())
void show()

const live = document.getElementById('live')
let ticks = 0
subscribe(
  (type, data) => {
    const page = current?.page
    if (!page) return
    page.onEvent?.(type, data)
    // a page whose data costs more (Earnings reads the chain) reloads on every n-th tick only
    if (type === 'tick' && ++ticks % (page.tickEvery ?? 1) !== 0) return
    if (page.refreshOn?.includes(type)) void show(true)
  },
  (on) => {
    live.textContent = on ? 'live' : 'reconnecting…'
    live.className = `live ${on ? 'on' : 'off'}`
  }
)
