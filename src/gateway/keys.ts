// API keys of the gateway: `openlora gateway keys add|list|revoke` keeps them in
// <dataDir>/gateway-keys.json (mode 0600), each stored only as its sha256, with its own spend
// budget (wei the gateway may pay for its jobs) and request rate. The running gateway re-reads
// the file when it changes, so a revoked key stops working without a restart.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { z } from '../common/schema.ts'
import { GatewayError } from './errors.ts'

export const KEYS_FILE = 'gateway-keys.json'

const KeyRecord = z.object({
  id: z.string().regex(/^[0-9a-f]{8}$/),
  name: z.string().max(128),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  admin: z.boolean(),
  /** wei this key's jobs may cost in total; '' = no limit */
  maxSpend: z.string().regex(/^[0-9]{0,78}$/),
  /** requests per minute; 0 = no limit */
  ratePerMinute: z.number().int().min(0).max(1_000_000),
  createdAt: z.number().int(),
  revokedAt: z.number().int().nullable()
})
export type KeyRecord = z.infer<typeof KeyRecord>
const KeyFile = z.object({ v: z.literal(1), keys: z.array(KeyRecord).max(10_000) })

const hashKey = (key: string): string => createHash('sha256').update(key).digest('hex')

export class KeyStore {
  readonly file: string
  #records: KeyRecord[] = []
  #version = ''

  constructor(dataDir: string) {
    this.file = join(dataDir, KEYS_FILE)
  }

  /** The current keys (re-read when the file changed). */
  records(): KeyRecord[] {
    let version = ''
    try {
      // mtime and size: two writes within one timestamp tick still differ in size (a revocation
      // adds a timestamp), so a change is never missed
      const st = statSync(this.file)
      version = `${st.mtimeMs}:${st.size}`
    } catch {
      this.#records = []
      this.#version = ''
      return this.#records
    }
    if (version !== this.#version) {
      const parsed = KeyFile.safeParse(JSON.parse(readFileSync(this.file, 'utf8')))
      if (!parsed.success) throw new Error(`${this.file} is malformed: ${parsed.error.issues[0]?.message}`)
      this.#records = parsed.data.keys
      this.#version = version
    }
    return this.#records
  }

  active(): KeyRecord[] {
    return this.records().filter((k) => k.revokedAt === null)
  }

  /** Creates a key; the secret is returned once and never stored. */
  add(opts: { name: string; admin?: boolean; maxSpend?: string; ratePerMinute?: number }): {
    key: string
    record: KeyRecord
  } {
    const id = randomBytes(4).toString('hex')
    const key = `olk-${id}-${randomBytes(24).toString('base64url')}`
    const record = KeyRecord.parse({
      id,
      name: opts.name,
      hash: hashKey(key),
      admin: opts.admin ?? false,
      maxSpend: opts.maxSpend ?? '',
      ratePerMinute: opts.ratePerMinute ?? 0,
      createdAt: Date.now(),
      revokedAt: null
    })
    this.#write([...this.records(), record])
    return { key, record }
  }

  revoke(idOrName: string): KeyRecord {
    const all = this.records()
    const k = all.find((r) => r.revokedAt === null && (r.id === idOrName || r.name === idOrName))
    if (!k) throw new Error(`no active key with id or name ${idOrName}`)
    const revoked = { ...k, revokedAt: Date.now() }
    this.#write(all.map((r) => (r === k ? revoked : r)))
    return revoked
  }

  /** The active key whose secret this is, or undefined. */
  find(key: string): KeyRecord | undefined {
    const h = Buffer.from(hashKey(key), 'hex')
    return this.active().find((r) => timingSafeEqual(Buffer.from(r.hash, 'hex'), h))
  }

  #write(keys: KeyRecord[]): void {
    const tmp = `${this.file}.tmp`
    writeFileSync(tmp, `${JSON.stringify({ v: 1, keys }, null, 2)}\n`, { mode: 0o600 })
    renameSync(tmp, this.file)
  }

  exists(): boolean {
    return existsSync(this.file)
  }
}

/** Authenticates requests and keeps each key's rate and spend. */
export class KeyAuth {
  readonly #store: KeyStore
  readonly #required: boolean
  readonly #adminToken: () => string | undefined
  readonly #buckets = new Map<string, { tokens: number; at: number }>()
  readonly #spent = new Map<string, bigint>()

  readonly #persist: ((id: string, spent: bigint) => Promise<void>) | undefined

  /**
   * `spent`: what each key spent before (from the node's LevelDB); `persist` writes a key's new
   * total after each paid job, so budgets hold across restarts.
   */
  constructor(
    store: KeyStore,
    required: boolean,
    adminToken: () => string | undefined,
    spent: Map<string, bigint> = new Map(),
    persist?: (id: string, spent: bigint) => Promise<void>
  ) {
    this.#store = store
    this.#required = required
    this.#adminToken = adminToken
    for (const [k, v] of spent) this.#spent.set(k, v)
    this.#persist = persist
  }

  get required(): boolean {
    return this.#required
  }

  /** The key of a request (undefined when keys are off); 401 for a missing or unknown key. */
  authenticate(authorization: string | undefined): KeyRecord | undefined {
    if (!this.#required) return undefined
    const key = bearer(authorization)
    if (key === undefined)
      throw new GatewayError(
        401,
        'authentication_error',
        'Missing API key: send "Authorization: Bearer <key>" (keys: openlora gateway keys add).',
        {
          code: 'missing_api_key'
        }
      )
    const rec = this.#store.find(key)
    if (!rec)
      throw new GatewayError(401, 'authentication_error', 'Incorrect or revoked API key.', {
        code: 'invalid_api_key'
      })
    this.#rate(rec)
    return rec
  }

  /** Admin routes: an admin key, or the node's admin token (<dataDir>/admin.json). */
  requireAdmin(authorization: string | undefined): void {
    const key = bearer(authorization)
    const token = this.#adminToken()
    if (
      key !== undefined &&
      token !== undefined &&
      key.length === token.length &&
      timingSafeEqual(Buffer.from(key), Buffer.from(token))
    )
      return
    const rec = key === undefined ? undefined : this.#store.find(key)
    if (rec?.admin) return
    throw new GatewayError(
      401,
      'authentication_error',
      'This route needs an admin key or the node admin token (<dataDir>/admin.json).',
      {
        code: 'admin_required'
      }
    )
  }

  checkBudget(key: unknown): void {
    const rec = key as KeyRecord | undefined
    if (!rec || rec.maxSpend === '') return
    const spent = this.#spent.get(rec.id) ?? 0n
    if (spent >= BigInt(rec.maxSpend))
      throw new GatewayError(
        402,
        'insufficient_quota',
        `API key ${rec.name} has spent its budget of ${rec.maxSpend} wei.`,
        {
          code: 'budget_exhausted'
        }
      )
  }

  spend(key: unknown, wei: bigint): void {
    const rec = key as KeyRecord | undefined
    if (!rec || wei === 0n) return
    const total = (this.#spent.get(rec.id) ?? 0n) + wei
    this.#spent.set(rec.id, total)
    void this.#persist?.(rec.id, total).catch(() => {})
  }

  spent(id: string): bigint {
    return this.#spent.get(id) ?? 0n
  }

  #rate(rec: KeyRecord): void {
    if (rec.ratePerMinute === 0) return
    const now = Date.now()
    const b = this.#buckets.get(rec.id) ?? { tokens: rec.ratePerMinute, at: now }
    b.tokens = Math.min(rec.ratePerMinute, b.tokens + ((now - b.at) / 60_000) * rec.ratePerMinute)
    b.at = now
    this.#buckets.set(rec.id, b)
    if (b.tokens < 1)
      throw new GatewayError(
        429,
        'rate_limit_error',
        `API key ${rec.name} is over its ${rec.ratePerMinute} requests per minute.`,
        {
          code: 'rate_limit_exceeded',
          retryAfterMs: Math.ceil(((1 - b.tokens) / rec.ratePerMinute) * 60_000)
        }
      )
    b.tokens -= 1
  }
}

function bearer(h: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S{1,512})$/i.exec(h ?? '')
  return m?.[1]
}
