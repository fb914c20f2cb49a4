// An ESM load hook for the Jazzer.js fuzz process: hands Jazzer's instrumenting hook plain
// JavaScript for the project's .ts modules. Node 24 runs .ts by stripping types, but its loader
// reports them as format 'module-typescript', and Jazzer's hook instruments only format 'module'
// (it would leave every src/ decoder without coverage feedback). Strip mode replaces types with
// blanks, so line and column numbers in stack traces stay those of the .ts file.
// Registered (scripts/fuzz/jazzer-run.ts) before Jazzer's hook, so it runs after it in the chain.
import { stripTypeScriptTypes } from 'node:module'

type Load = (
  url: string,
  context: { format?: string | null },
  next: (
    url: string,
    context: { format?: string | null }
  ) => Promise<{ format?: string | null; source?: unknown }>
) => Promise<{ format?: string | null; source?: unknown }>

export const load: Load = async (url, context, next) => {
  const r = await next(url, context)
  if (r.format !== 'module-typescript' || r.source === undefined) return r
  const code = typeof r.source === 'string' ? r.source : Buffer.from(r.source as Uint8Array).toString('utf8')
  return { ...r, format: 'module', source: stripTypeScriptTypes(code, { mode: 'strip' }) }
}
