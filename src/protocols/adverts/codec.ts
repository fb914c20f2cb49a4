// Wire form of a capability advert: canonical CBOR of `{ body, sig }`, where `sig` is the peer's
// Ed25519 signature over canonical CBOR of `{ domain, body }`. Decoding checks size first, then
// that the bytes are canonical (so one advert has exactly one encoding and one signature), then
// the schema of every known field. Unknown body fields are kept and covered by the signature but
// not interpreted, so a later version can add optional fields without splitting the network.
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { decodeCanonical, encodeCanonical } from '../../crypto/cbor.ts'
import { bytesEqual, type Hex } from '../../crypto/hash.ts'
import {
  ADAPTER_TIERS,
  type AdapterTier,
  type Capabilities,
  type Hardware,
  type ServedModel
} from '../../serving/capability.ts'
import { type BloomFilter, bloomHas, createBloom } from './bloom.ts'
import {
  ADVERT_SIGN_DOMAIN,
  ADVERT_VERSION,
  BINDING_CACHE_SIZE,
  MAX_ADDR_CHARS,
  MAX_ADDRS,
  MAX_ADVERT_BYTES,
  MAX_BLOOM_BYTES,
  MAX_BLOOM_HASHES,
  MAX_CID_CHARS,
  MAX_GPUS,
  MAX_MODELS,
  MAX_STRING_CHARS
} from './constants.ts'
import { InvalidAdvertError } from './errors.ts'

export interface AdapterTierSet {
  /** how many adapters the tier holds */
  count: number
  /** the first ones by CID (all of them when count <= the list limit) */
  list: string[]
  /** all of them, when count exceeds the list limit */
  bloom: BloomFilter | null
}

export interface AdvertBody {
  v: typeof ADVERT_VERSION
  peerId: string
  /** operator's Ethereum address (checksummed) */
  operator: Hex
  /** EIP-191 signature by the operator key over operatorBindingMessage(peerId), 65 bytes */
  operatorSig: Uint8Array
  /** software version of the node */
  version: string
  /** multiaddrs to dial this peer on (announce addresses, or listen addresses) */
  addrs: string[]
  hardware: Hardware
  executionProvider: 'cpu' | 'cuda'
  models: ServedModel[]
  adapters: Record<AdapterTier, AdapterTierSet>
  queueDepth: number
  freeSlots: number
  pricePer1kTokens: string
  /** strictly increasing per peer; a receiver ignores anything not newer than what it holds */
  seq: number
  /** ms since epoch when signed */
  ts: number
  /** ms since epoch after which the advert must be dropped */
  expires: number
  /**
   * how the node is reached: public address, through a relay, or only on its LAN. Optional (added
   * after v1 shipped): adverts without it stay valid and canonical.
   */
  reachability?: 'public' | 'relayed' | 'local'
}

export interface SignedAdvert {
  body: AdvertBody
  sig: Uint8Array
  /** the exact wire bytes */
  bytes: Uint8Array
}

export function compactTier(cids: readonly string[], listLimit: number): AdapterTierSet {
  const list = cids.slice(0, listLimit)
  const bloom = cids.length > listLimit ? createBloom(cids, cids.length) : null
  return { count: cids.length, list: [...list], bloom }
}

/** Where a tier holds a CID: in its explicit list, probably (Bloom filter hit), or not at all. */
export function tierHas(set: AdapterTierSet, cid: string): 'list' | 'bloom' | null {
  if (set.list.includes(cid)) return 'list'
  if (set.bloom != null && bloomHas(set.bloom, cid)) return 'bloom'
  return null
}

export interface BuildAdvertInput {
  peerId: string
  operator: Hex
  operatorSig: Uint8Array
  version: string
  addrs: string[]
  caps: Capabilities
  seq: number
  now: number
  ttlMs: number
  adapterListLimit: number
  reachability?: 'public' | 'relayed' | 'local'
}

export function buildAdvertBody(i: BuildAdvertInput): AdvertBody {
  const adapters = {} as Record<AdapterTier, AdapterTierSet>
  for (const t of ADAPTER_TIERS) adapters[t] = compactTier(i.caps.adapters[t], i.adapterListLimit)
  return {
    v: ADVERT_VERSION,
    peerId: i.peerId,
    operator: i.operator,
    operatorSig: i.operatorSig,
    version: i.version,
    addrs: i.addrs.slice(0, MAX_ADDRS),
    hardware: i.caps.hardware,
    executionProvider: i.caps.executionProvider,
    models: i.caps.models.map((m) =>
      m.family === undefined
        ? { id: m.id, weightsHash: m.weightsHash }
        : { id: m.id, weightsHash: m.weightsHash, family: m.family }
    ),
    adapters,
    queueDepth: i.caps.queueDepth,
    freeSlots: i.caps.freeSlots,
    pricePer1kTokens: i.caps.pricePer1kTokens,
    seq: i.seq,
    ts: i.now,
    expires: i.now + i.ttlMs,
    ...(i.reachability ? { reachability: i.reachability } : {})
  }
}

export function advertSigningBytes(body: AdvertBody): Uint8Array {
  return encodeCanonical({ domain: ADVERT_SIGN_DOMAIN, body })
}

export async function signAdvert(body: AdvertBody, key: PrivateKey): Promise<SignedAdvert> {
  // Some key implementations hand back a Buffer; adverts carry plain bytes.
  const sig = new Uint8Array(await key.sign(advertSigningBytes(body)))
  const bytes = encodeCanonical({ body, sig })
  if (bytes.length > MAX_ADVERT_BYTES) {
    throw new InvalidAdvertError(
      'oversized',
      `advert is ${bytes.length} bytes, more than the ${MAX_ADVERT_BYTES} allowed; lower adverts.adapterListLimit`,
      { bytes: bytes.length }
    )
  }
  return { body, sig, bytes }
}

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
/**
 * Ed25519 key objects by peer id. Building a KeyObject per verification cost more than the
 * verification itself (profiled: 20 in-process nodes), and every peer sends adverts repeatedly.
 */
const keyCache = new Map<string, KeyObject>()

function ed25519Key(peerId: string): KeyObject | undefined {
  const hit = keyCache.get(peerId)
  if (hit) return hit
  const pub = peerIdFromString(peerId).publicKey
  if (pub?.type !== 'Ed25519') return undefined
  const key = createPublicKey({
    key: Buffer.concat([ED25519_SPKI_PREFIX, pub.raw]),
    format: 'der',
    type: 'spki'
  })
  if (keyCache.size >= BINDING_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!)
  keyCache.set(peerId, key)
  return key
}

export async function verifyAdvertSignature(adv: SignedAdvert): Promise<boolean> {
  try {
    const data = advertSigningBytes(adv.body)
    const key = ed25519Key(adv.body.peerId)
    if (key) return cryptoVerify(null, data, key, adv.sig)
    // other key types (not generated by this node, but valid peer ids)
    const pub = peerIdFromString(adv.body.peerId).publicKey
    return pub != null && (await pub.verify(data, adv.sig))
  } catch {
    return false
  }
}

/** Size, canonical form and schema; throws InvalidAdvertError with the reason. */
export function decodeAdvert(bytes: Uint8Array): SignedAdvert {
  if (bytes.length > MAX_ADVERT_BYTES) {
    throw new InvalidAdvertError('oversized', `advert is ${bytes.length} bytes; at most ${MAX_ADVERT_BYTES}`)
  }
  let raw: unknown
  try {
    raw = decodeCanonical(bytes)
  } catch (err) {
    throw new InvalidAdvertError('malformed', `advert is not valid CBOR: ${(err as Error).message}`)
  }
  if (!bytesEqual(encodeCanonical(raw), bytes)) {
    throw new InvalidAdvertError('not-canonical', 'advert is not in canonical CBOR (RFC 8949 §4.2.1)')
  }
  const env = obj(raw, 'advert')
  const sig = bin(env.sig, 'sig', 64, 64)
  const body = checkBody(env.body)
  return { body, sig, bytes }
}

function fail(path: string, what: string): never {
  throw new InvalidAdvertError('schema', `advert field ${path}: ${what}`, { field: path })
}

function obj(v: unknown, path: string): Record<string, unknown> {
  if (v == null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array)
    fail(path, 'must be a map')
  return v as Record<string, unknown>
}

/** a family registry key: 'llama', 'gemma3_text', … */
const FAMILY_RE = /^[a-z0-9_]+$/

function str(v: unknown, path: string, max = MAX_STRING_CHARS, re?: RegExp): string {
  if (typeof v !== 'string') fail(path, 'must be a string')
  if (v.length > max) fail(path, `longer than ${max} characters`)
  if (re && !re.test(v)) fail(path, `does not match ${re}`)
  return v
}

function uint(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(path, 'must be a non-negative integer')
  return v
}

function bin(v: unknown, path: string, min: number, max: number): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(path, 'must be a byte string')
  if (v.length < min || v.length > max) fail(path, `must be ${min}..${max} bytes, is ${v.length}`)
  return v
}

function arr(v: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(v)) fail(path, 'must be an array')
  if (v.length > max) fail(path, `has ${v.length} entries; at most ${max}`)
  return v
}

const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/
const HASH32_RE = /^0x[0-9a-f]{64}$/
const DECIMAL_RE = /^(0|[1-9][0-9]{0,77})$/

function checkHardware(v: unknown): Hardware {
  const h = obj(v, 'hardware')
  const cpu = obj(h.cpu, 'hardware.cpu')
  uint(cpu.cores, 'hardware.cpu.cores')
  uint(cpu.ramMb, 'hardware.cpu.ramMb')
  str(cpu.model, 'hardware.cpu.model')
  arr(h.gpus, 'hardware.gpus', MAX_GPUS).forEach((g, i) => {
    const o = obj(g, `hardware.gpus[${i}]`)
    str(o.name, `hardware.gpus[${i}].name`)
    str(o.driver, `hardware.gpus[${i}].driver`)
    uint(o.memoryMb, `hardware.gpus[${i}].memoryMb`)
  })
  return h as unknown as Hardware
}

function checkTier(v: unknown, path: string, adapterCount: { n: number }): AdapterTierSet {
  const t = obj(v, path)
  const count = uint(t.count, `${path}.count`)
  const list = arr(t.list, `${path}.list`, Math.min(count, 1024))
  list.forEach((c, i) => {
    str(c, `${path}.list[${i}]`, MAX_CID_CHARS)
  })
  if (t.bloom !== null) {
    const b = obj(t.bloom, `${path}.bloom`)
    const bits = uint(b.bits, `${path}.bloom.bits`)
    const k = uint(b.k, `${path}.bloom.k`)
    const data = bin(b.data, `${path}.bloom.data`, 1, MAX_BLOOM_BYTES)
    if (bits < 1 || Math.ceil(bits / 8) !== data.length)
      fail(`${path}.bloom.bits`, 'does not match data length')
    if (k < 1 || k > MAX_BLOOM_HASHES) fail(`${path}.bloom.k`, `must be 1..${MAX_BLOOM_HASHES}`)
  } else if (list.length !== count) {
    fail(`${path}.list`, 'must list every adapter when there is no Bloom filter')
  }
  adapterCount.n += count
  return t as unknown as AdapterTierSet
}

function checkBody(v: unknown): AdvertBody {
  const b = obj(v, 'body')
  if (b.v !== ADVERT_VERSION) fail('v', `must be ${ADVERT_VERSION}`)
  const peerId = str(b.peerId, 'peerId', 128)
  try {
    peerIdFromString(peerId)
  } catch {
    fail('peerId', 'is not a peer id')
  }
  str(b.operator, 'operator', 42, ADDRESS_RE)
  bin(b.operatorSig, 'operatorSig', 65, 65)
  str(b.version, 'version', 64)
  arr(b.addrs, 'addrs', MAX_ADDRS).forEach((a, i) => {
    str(a, `addrs[${i}]`, MAX_ADDR_CHARS, /^\//)
  })
  checkHardware(b.hardware)
  if (b.executionProvider !== 'cpu' && b.executionProvider !== 'cuda')
    fail('executionProvider', "must be 'cpu' or 'cuda'")
  arr(b.models, 'models', MAX_MODELS).forEach((m, i) => {
    const o = obj(m, `models[${i}]`)
    str(o.id, `models[${i}].id`)
    str(o.weightsHash, `models[${i}].weightsHash`, 66, HASH32_RE)
    if (o.family !== undefined) str(o.family, `models[${i}].family`, 32, FAMILY_RE)
  })
  const a = obj(b.adapters, 'adapters')
  const total = { n: 0 }
  for (const t of ADAPTER_TIERS) checkTier(a[t], `adapters.${t}`, total)
  uint(b.queueDepth, 'queueDepth')
  uint(b.freeSlots, 'freeSlots')
  str(b.pricePer1kTokens, 'pricePer1kTokens', 78, DECIMAL_RE)
  uint(b.seq, 'seq')
  const ts = uint(b.ts, 'ts')
  const expires = uint(b.expires, 'expires')
  if (expires <= ts) fail('expires', 'must be after ts')
  if (b.reachability !== undefined && !['public', 'relayed', 'local'].includes(b.reachability as string))
    fail('reachability', "must be 'public', 'relayed' or 'local' when present")
  return b as unknown as AdvertBody
}
