// Debian's chromium driven by playwright-core (no browser download: playwright's own builds
// cannot be fetched here). Screenshots go to test-output/ (gitignored).
import { existsSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { type Browser, chromium, type Page } from 'playwright-core'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const OUT = resolve(import.meta.dirname, '..', '..', 'test-output')

export async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `no chromium at ${CHROMIUM}. The browser tests drive Debian's chromium: install it with\n` +
        '  sudo apt-get update && sudo apt-get install -y chromium\n' +
        '(or point CHROMIUM_PATH at a Chromium/Chrome binary). .ci/run installs it when missing.'
    )
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: 60_000
  })
}

export async function newPage(browser: Browser): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1360, height: 900 }, deviceScaleFactor: 1 })
  const page = await ctx.newPage()
  page.setDefaultTimeout(30_000)
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text())
  })
  ;(page as Page & { jsErrors: string[] }).jsErrors = errors
  return page
}

/** The page's uncaught errors and console errors so far (a page that throws is a failed page). */
export function jsErrors(page: Page): string[] {
  return (page as Page & { jsErrors: string[] }).jsErrors
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(OUT, { recursive: true })
  const file = join(OUT, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  return file
}
