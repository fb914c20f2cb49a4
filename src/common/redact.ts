// Secrets never reach a log line or an error message (docs/THREATS.md L4). Hosted RPC URLs carry
// their API key in the path, the query or the user info; keys and tokens are named fields.

/** An URL as it may appear in errors and logs: scheme, host and port only. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    const hidden = u.pathname.length > 1 || u.search !== '' || u.username !== '' || u.password !== ''
    return `${u.protocol}//${u.host}${hidden ? '/…' : ''}`
  } catch {
    return '(an URL)'
  }
}

const URL_RE = /\b(?:https?|wss?):\/\/[^\s"'<>)]+/g

/** Replaces every URL in a text by its redacted form. */
export function redactUrls(text: string): string {
  return text.replace(URL_RE, (m) => redactUrl(m))
}

/**
 * Field names whose values are secrets wherever they appear in a log line's fields. Not plain
 * `token`: the chain logs the OPEN token's contract address under that name.
 */
export const SECRET_FIELDS = [
  'privateKey',
  'operatorKey',
  'key',
  'apiKey',
  'apiKeys',
  'accessToken',
  'bearerToken',
  'adminToken',
  'password',
  'secret',
  'authorization'
] as const

/** Field names whose values are URLs that may carry a key (shown as scheme://host only). */
export const URL_FIELDS = ['rpcUrl', 'url', 'endpoint'] as const
