// `openlora datanet attribute` (attribute a text or token ids to datanets, writing the proof) and
// `openlora datanet verify-proof FILE` (check a proof offline against published roots).
import { readFile, stat, writeFile } from 'node:fs/promises'
import { Attributor } from '../../../attribution/attribute.ts'
import { MAX_OUTPUT_TOKENS, MAX_PROOF_BYTES } from '../../../attribution/constants.ts'
import { SpanIndexCache } from '../../../attribution/index-file.ts'
import { modelTextEncoder } from '../../../attribution/model-tokenizer.ts'
import type { AttributionSummary, TextEncoder, VersionRoot } from '../../../attribution/types.ts'
import { verifyAttribution } from '../../../attribution/verify.ts'
import { uint32, z } from '../../../common/schema.ts'
import type { Hex } from '../../../crypto/hash.ts'
import { type Command, requireString, UsageError } from '../../cli/command.ts'
import { readJsonInput } from '../../cli/json-input.ts'
import { chainOptions, clientFromFlags } from './chain-options.ts'
import { rootsFromChain } from './datanet-chain.ts'
import { openDatanetStore, print } from './datanet-shared.ts'
import { configFromFlags, configOptions } from './shared.ts'

const json = { type: 'boolean', description: 'print JSON' } as const
const HEX32 = /^0x[0-9a-fA-F]{64}$/

/** ID[@VERSION][=BP]: version defaults to the latest, bp to 10000 when only one datanet is named. */
function parseDatanetArg(v: string): { id: Hex; version?: number; bp?: number } {
  const m = /^(0x[0-9a-fA-F]{64})(?:@(\d+))?(?:=(\d+))?$/.exec(v)
  if (!m) throw new UsageError(`--datanet takes ID[@VERSION][=BP], got "${v}"`)
  return {
    id: m[1]!.toLowerCase() as Hex,
    version: m[2] ? Number(m[2]) : undefined,
    bp: m[3] ? Number(m[3]) : undefined
  }
}

const attribute: Command = {
  name: 'datanet attribute',
  summary:
    'attribute a text (or output token ids) to datanets with the model tokenizer; writes summary + proof',
  options: {
    ...configOptions,
    model: {
      type: 'string',
      description: 'base model directory (its tokenizer.json is used)',
      valueName: 'DIR'
    },
    datanet: {
      type: 'string',
      multiple: true,
      description: 'provenance entry ID[@VERSION][=BP]; BP may be left out for a single datanet',
      valueName: 'ID'
    },
    text: { type: 'string', description: 'the output text to attribute', valueName: 'TEXT' },
    'output-ids': { type: 'string', description: 'JSON file with the output token ids', valueName: 'FILE' },
    'min-span': { type: 'string', description: 'shortest span that counts (default 8)', valueName: 'N' },
    out: {
      type: 'string',
      description: 'write { summary, proof, outputIds } here (default stdout)',
      valueName: 'FILE'
    },
    json
  },
  async run({ values }) {
    const model = requireString(values, 'model')
    const entries = ((values.datanet as string[] | undefined) ?? []).map(parseDatanetArg)
    if (entries.length === 0) throw new UsageError('--datanet is required')
    if (entries.length > 1 && entries.some((e) => e.bp === undefined))
      throw new UsageError('with several --datanet, give each its weight as ID[@VERSION]=BP')
    const { encoder, tokenizerId } = await modelTextEncoder(model)
    let outputIds: number[]
    if (typeof values.text === 'string') outputIds = encoder.encode(values.text)
    else if (typeof values['output-ids'] === 'string')
      outputIds = await readJsonInput(values['output-ids'], z.array(uint32).max(MAX_OUTPUT_TOKENS), {
        what: '--output-ids',
        maxBytes: MAX_PROOF_BYTES,
        hint: 'a JSON array of token ids'
      })
    else throw new UsageError('give --text TEXT or --output-ids FILE')
    const s = await openDatanetStore(configFromFlags(values))
    try {
      const datanets = []
      for (const e of entries)
        datanets.push({
          id: e.id,
          version: e.version ?? (await s.store.getDatanet(e.id)).latestVersion,
          bp: e.bp ?? 10_000
        })
      const attributor = new Attributor(
        {
          store: s.store,
          indexes: new SpanIndexCache({ store: s.store, tokenizer: encoder, logger: s.log }, { tokenizerId })
        },
        { minSpanTokens: typeof values['min-span'] === 'string' ? Number(values['min-span']) : undefined }
      )
      const { summary, proof } = await attributor.attribute(outputIds, { datanets })
      const doc = { summary, proof, outputIds }
      if (typeof values.out === 'string') await writeFile(values.out, JSON.stringify(doc))
      print(
        values.json === true || typeof values.out !== 'string',
        typeof values.out === 'string' ? summary : doc,
        () =>
          [
            `method      ${summary.method} (${proof.spans.length} span proofs)`,
            ...summary.datanets.map((d) => `datanet     ${d.id}  ${d.bp} bp`),
            ...summary.contributors.map((c) => `contributor ${c.address}  ${c.bp} bp`),
            `proofHash   ${summary.proofHash}`,
            `proof       ${values.out}`
          ].join('\n')
      )
      return 0
    } finally {
      await s.close()
    }
  }
}

/** ID@VERSION=ROOT */
function parseRoot(v: string): VersionRoot {
  const m = /^(0x[0-9a-fA-F]{64})@(\d+)=(0x[0-9a-fA-F]{64})$/.exec(v)
  if (!m) throw new UsageError(`--root takes ID@VERSION=ROOT, got "${v}"`)
  return { datanetId: m[1]!.toLowerCase() as Hex, version: Number(m[2]), root: m[3]!.toLowerCase() as Hex }
}

const verifyProof: Command = {
  name: 'datanet verify-proof',
  summary: 'check an attribution proof offline against published version roots (no index, no model weights)',
  positionals: 'FILE',
  options: {
    ...configOptions,
    root: {
      type: 'string',
      multiple: true,
      description:
        'trusted root ID@VERSION=ROOT; default: roots on-chain with --chain/--rpc, else versions in --data-dir',
      valueName: 'ROOT'
    },
    model: {
      type: 'string',
      description: 'model directory whose tokenizer re-checks span tokens',
      valueName: 'DIR'
    },
    ...chainOptions,
    json
  },
  async run({ values, positionals }) {
    const file = positionals[0]
    if (!file || positionals.length > 1) throw new UsageError('give exactly one proof FILE')
    if ((await stat(file)).size > MAX_PROOF_BYTES)
      throw new UsageError(`${file} is over ${MAX_PROOF_BYTES} bytes`)
    let doc: Record<string, unknown>
    try {
      doc = JSON.parse(await readFile(file, 'utf8'))
    } catch (err) {
      throw new UsageError(`${file} is not JSON: ${(err as Error).message}`)
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
      throw new UsageError(
        `${file} must hold a proof object, { proof, … } or an \`openlora infer --out\` result`
      )
    if ('receipt' in doc && !('attributionProof' in doc))
      throw new UsageError(
        (doc.receipt as { body?: { attribution?: { method?: unknown } } })?.body?.attribution?.method ===
          'spans'
          ? `${file} is a job result whose proof did not come with it (too large for the result frame): the serving node keeps it`
          : `${file} is a job result attributed by provenance only: there is no span proof to verify`
      )
    // A file is a bare proof, { proof, summary?, outputIds? } as `datanet attribute` writes, or
    // what `openlora infer --out` writes: { attributionProof, receipt, outputIds, … }
    const fromInfer = 'attributionProof' in doc
    const wrapped = fromInfer || 'proof' in doc
    const proof = fromInfer ? doc.attributionProof : wrapped ? doc.proof : doc
    const summary = fromInfer
      ? ((doc.receipt as { body?: { attribution?: AttributionSummary } } | undefined)?.body?.attribution ??
        undefined)
      : wrapped
        ? (doc.summary as AttributionSummary | undefined)
        : undefined
    const outputIds = wrapped ? (doc.outputIds as number[] | undefined) : undefined
    const roots = ((values.root as string[] | undefined) ?? []).map(parseRoot)
    const wanted = Array.isArray((proof as { datanets?: unknown }).datanets)
      ? ((proof as { datanets: { id?: unknown; version?: unknown }[] }).datanets ?? [])
      : []
    if (roots.length === 0 && (typeof values.chain === 'string' || typeof values.rpc === 'string')) {
      const ok = wanted.filter(
        (d) => typeof d.id === 'string' && HEX32.test(d.id) && typeof d.version === 'number'
      )
      const client = await clientFromFlags(values, false)
      roots.push(...(await rootsFromChain(client, ok as { id: Hex; version: number }[])))
    } else if (roots.length === 0) {
      const s = await openDatanetStore(configFromFlags(values))
      try {
        for (const d of wanted) {
          if (typeof d.id !== 'string' || !HEX32.test(d.id) || typeof d.version !== 'number') continue
          try {
            const v = await s.store.getVersion(d.id, d.version)
            roots.push({ datanetId: v.datanetId, version: v.version, root: v.root })
          } catch {}
        }
      } finally {
        await s.close()
      }
    }
    let tokenizer: TextEncoder | undefined
    if (typeof values.model === 'string') tokenizer = (await modelTextEncoder(values.model)).encoder
    const res = verifyAttribution(proof, roots, { tokenizer, outputIds, summary })
    print(values.json === true, res, () =>
      [
        `${res.ok ? 'OK' : 'FAILED'}: ${res.checked.spans} span proofs checked against ${roots.length} roots`,
        ...res.failures.map(
          (f) => `  ${f.check}${f.span !== undefined ? ` (span ${f.span})` : ''}: ${f.message}`
        ),
        ...(res.checked.tokens
          ? []
          : ['  note: span tokens were not re-checked; give --model DIR for the tokenizer']),
        ...(res.checked.output
          ? []
          : ['  note: output positions were not checked (the file has no outputIds)'])
      ].join('\n')
    )
    return res.ok ? 0 : 1
  }
}

const provenance: Command = {
  name: 'datanet provenance',
  summary: 'declare the datanets an adapter was trained on (ID[@VERSION]=BP, summing to 10000), or show it',
  options: {
    ...configOptions,
    adapter: { type: 'string', description: 'adapter CID', valueName: 'CID' },
    datanet: {
      type: 'string',
      multiple: true,
      description: 'ID[@VERSION]=BP (version defaults to the latest); none: show',
      valueName: 'ID'
    },
    json
  },
  async run({ values }) {
    const adapter = typeof values.adapter === 'string' ? values.adapter : undefined
    const entries = ((values.datanet as string[] | undefined) ?? []).map(parseDatanetArg)
    if (entries.length > 0 && !adapter) throw new UsageError('--adapter is required to declare provenance')
    if (entries.some((e) => e.bp === undefined) && entries.length > 1)
      throw new UsageError('with several --datanet, give each its weight as ID[@VERSION]=BP')
    const s = await openDatanetStore(configFromFlags(values))
    try {
      if (entries.length > 0) {
        const datanets = []
        for (const e of entries)
          datanets.push({
            id: e.id,
            version:
              e.version ??
              (await s.store.getVersion(e.id, (await s.store.getDatanet(e.id)).latestVersion)).version,
            bp: e.bp ?? 10_000
          })
        const p = await s.provenance.set(adapter!, { datanets })
        print(values.json === true, { adapter, provenance: p }, () =>
          p.datanets.map((d) => `${adapter}  ${d.id}@${d.version}  ${d.bp} bp`).join('\n')
        )
        return 0
      }
      const rows = adapter
        ? [{ adapter, provenance: await s.provenance.get(adapter) }].filter((r) => r.provenance)
        : await s.provenance.list()
      print(values.json === true, rows, () =>
        rows.length === 0
          ? 'no adapter provenance declared'
          : rows
              .flatMap((r) =>
                r.provenance!.datanets.map((d) => `${r.adapter}  ${d.id}@${d.version}  ${d.bp} bp`)
              )
              .join('\n')
      )
      return 0
    } finally {
      await s.close()
    }
  }
}

export const datanetProofCommands: Command[] = [attribute, verifyProof, provenance]
