// `openlora infer`: run one job through any peer of the network and check its receipt.
//   openlora infer --via /ip4/127.0.0.1/tcp/4010/p2p/12D3… --model ID [--adapter CID]
//   openlora infer --peer 12D3… --bootstrap /ip4/…/p2p/RELAY …   (a node behind NAT: found
//                  through the bootstrap peers, reached over their relay, or directly once
//                  hole punching succeeds)
//   openlora infer --bootstrap /ip4/…/p2p/… --model ID --adapter CID …   (any peer serving it)
//                  (--prompt TEXT | --messages FILE | --prompt-ids 1,2,3) [--json] [--out FILE]
//                  [--pay --chain FILE --key-file FILE [--max-price WEI]]
import { writeFile } from 'node:fs/promises'
import { findPeer } from '../../../client/find-peer.ts'
import { createClientHost } from '../../../client/host.ts'
import { z } from '../../../common/schema.ts'
import { type ChatMessage, ChatMessageSchema } from '../../../protocols/infer/codec.ts'
import { MAX_MESSAGES } from '../../../protocols/infer/constants.ts'
import { InferError } from '../../../protocols/infer/errors.ts'
import { type Command, requireString, UsageError } from '../../cli/command.ts'
import { readJsonInput } from '../../cli/json-input.ts'
import { chainOptions } from './chain-options.ts'
import { openWallet } from './client-wallet.ts'

const MAX_MESSAGES_FILE_BYTES = 1024 * 1024

function intOption(values: Record<string, unknown>, name: string, dflt: number): number {
  const v = values[name]
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`--${name} must be a non-negative integer, got "${v}"`)
  return n
}

function readMessages(file: string): Promise<ChatMessage[]> {
  return readJsonInput(file, z.array(ChatMessageSchema).min(1).max(MAX_MESSAGES), {
    what: '--messages',
    maxBytes: MAX_MESSAGES_FILE_BYTES,
    hint: '[{ "role": "user", "content": "…" }]'
  })
}

export const inferCommand: Command = {
  name: 'infer',
  summary: 'run a job through a peer: stream its tokens, then print and verify the receipt',
  options: {
    via: { type: 'string', description: 'entry peer multiaddr (…/p2p/<peer id>)', valueName: 'MULTIADDR' },
    peer: {
      type: 'string',
      description: 'the peer id to run the job on (with --bootstrap: found through those peers)',
      valueName: 'PEERID'
    },
    bootstrap: {
      type: 'string',
      multiple: true,
      description: 'peer to join through (…/p2p/<peer id>); without --peer it routes the job',
      valueName: 'MULTIADDR'
    },
    model: { type: 'string', description: 'base model id', valueName: 'ID' },
    adapter: { type: 'string', description: 'adapter CID (none = the base model)', valueName: 'CID' },
    prompt: { type: 'string', description: 'prompt text', valueName: 'TEXT' },
    messages: {
      type: 'string',
      description: 'chat messages JSON file [{ role, content }]',
      valueName: 'FILE'
    },
    'prompt-ids': { type: 'string', description: 'prompt as token ids, comma separated', valueName: 'IDS' },
    'max-tokens': { type: 'string', description: 'new tokens at most (default 64)', valueName: 'N' },
    temperature: { type: 'string', description: 'sampling temperature (default 0 = greedy)', valueName: 'T' },
    seed: { type: 'string', description: 'sampling seed', valueName: 'N' },
    'timeout-ms': {
      type: 'string',
      description: 'deadline for the whole job (default 120000)',
      valueName: 'MS'
    },
    out: {
      type: 'string',
      description: 'write { receipt, promptIds, outputIds, … } for `openlora verify`',
      valueName: 'FILE'
    },
    json: { type: 'boolean', description: 'print one JSON object instead of streaming text' },
    pay: {
      type: 'boolean',
      description: 'pay nodes that charge with vouchers on your escrow (needs --chain or --rpc, and a key)'
    },
    'max-price': {
      type: 'string',
      description: 'with --pay: refuse nodes charging more wei per 1k tokens',
      valueName: 'WEI'
    },
    chain: chainOptions.chain!,
    rpc: chainOptions.rpc!,
    settlement: chainOptions.settlement!,
    'key-file': chainOptions['key-file']!,
    'data-dir': {
      type: 'string',
      description: 'with --pay: where the voucher wallet is kept (<dir>/client-wallet; default ./.openlora)',
      valueName: 'DIR'
    }
  },
  async run({ values }) {
    const bootstrap = (values.bootstrap as string[] | undefined) ?? []
    for (const b of bootstrap)
      if (!b.startsWith('/') || !b.includes('/p2p/'))
        throw new UsageError(`--bootstrap must be a multiaddr ending in /p2p/<peer id>, got "${b}"`)
    const peer = typeof values.peer === 'string' ? values.peer : undefined
    if (peer !== undefined && !/^[1-9A-HJ-NP-Za-km-z]{40,100}$/.test(peer))
      throw new UsageError(`--peer must be a peer id like 12D3KooW…, got "${peer}"`)
    if (peer !== undefined && bootstrap.length === 0 && values.via === undefined)
      throw new UsageError('--peer needs --bootstrap (or --via) to find the peer through')
    const via = typeof values.via === 'string' ? values.via : peer === undefined ? bootstrap[0] : undefined
    if (via === undefined && peer === undefined)
      throw new UsageError(
        'give --via MULTIADDR, --peer PEERID --bootstrap MULTIADDR, or --bootstrap MULTIADDR'
      )
    if (via !== undefined && (!via.startsWith('/') || !via.includes('/p2p/')))
      throw new UsageError(`--via must be a multiaddr ending in /p2p/<peer id>, got "${via}"`)
    const model = requireString(values, 'model')
    const inputs = ['prompt', 'messages', 'prompt-ids'].filter((k) => values[k] !== undefined)
    if (inputs.length !== 1) throw new UsageError('give exactly one of --prompt, --messages, --prompt-ids')
    const temperature = values.temperature === undefined ? undefined : Number(values.temperature)
    if (temperature !== undefined && !(temperature >= 0))
      throw new UsageError('--temperature must be a number ≥ 0')
    const promptIds =
      typeof values['prompt-ids'] === 'string'
        ? values['prompt-ids'].split(',').map((s) => {
            const n = Number(s.trim())
            if (!Number.isInteger(n) || n < 0) throw new UsageError(`--prompt-ids: "${s}" is not a token id`)
            return n
          })
        : undefined
    const messages = typeof values.messages === 'string' ? await readMessages(values.messages) : undefined
    const json = values.json === true
    const wallet = values.pay === true ? await openWallet(values) : undefined
    const { client, node, stop } = await createClientHost({ payer: wallet?.payer })
    try {
      let r: Awaited<ReturnType<typeof client.infer>>
      try {
        const target = peer !== undefined ? await findPeer(node, peer, via ? [via] : bootstrap) : via!
        r = await client.infer(
          target,
          {
            model,
            adapter: (values.adapter as string | undefined) ?? null,
            ...(typeof values.prompt === 'string' ? { prompt: values.prompt } : {}),
            ...(promptIds ? { promptIds } : {}),
            ...(messages ? { messages } : {}),
            params: {
              maxNewTokens: intOption(values, 'max-tokens', 64),
              ...(temperature !== undefined ? { temperature } : {}),
              ...(values.seed !== undefined ? { seed: intOption(values, 'seed', 0) } : {})
            },
            timeoutMs: intOption(values, 'timeout-ms', 120_000)
          },
          { onToken: json ? undefined : (t) => process.stdout.write(t.text) }
        )
      } catch (err) {
        // A typed refusal is an answer, not a crash: print its code (and retry hint) and exit 1.
        if (!(err instanceof InferError)) throw err
        const retry = err.retryAfterMs !== undefined ? ` (retry after ${err.retryAfterMs} ms)` : ''
        if (json)
          console.log(
            JSON.stringify({
              error: { code: err.code, message: err.message, retryAfterMs: err.retryAfterMs ?? null }
            })
          )
        else console.error(`\nopenlora infer: ${err.code}: ${err.message}${retry}`)
        return 1
      }
      const record = {
        jobId: r.jobId,
        servedBy: r.servedBy,
        route: r.route,
        text: r.text,
        finishReason: r.finishReason,
        promptIds: r.promptIds,
        outputIds: r.outputIds,
        usage: r.usage,
        timings: r.timings,
        receipt: r.receipt,
        ...(r.attributionProof === undefined ? {} : { attributionProof: r.attributionProof }),
        verification: r.verification?.ok ? { ok: true } : r.verification,
        connection: r.connection ?? null
      }
      if (typeof values.out === 'string') await writeFile(values.out, JSON.stringify(record, null, 2))
      const v = r.verification!
      if (json) console.log(JSON.stringify(record))
      else {
        const b = r.receipt.body
        console.log(
          `\n\nserved by ${r.servedBy} via ${r.route.join(' → ')}` +
            `${r.connection ? ` (${r.connection} connection)` : ''}\n` +
            `model     ${b.modelId}${b.adapter ? ` + adapter ${b.adapter}` : ''}\n` +
            `tokens    ${b.promptTokens} prompt + ${b.outputTokens} output, ${r.finishReason}\n` +
            `amount    ${b.amountDue} wei (${b.pricePer1kTokens} per 1k tokens)\n` +
            // who the answer credits: quoted spans (method spans) or the adapter's declared datanets
            `credits   ${b.attribution.method}: ${b.attribution.contributors.map((c) => `${c.address} ${(c.bp / 100).toFixed(2)}%`).join(', ') || 'no contributors'}\n` +
            `receipt   ${v.ok ? 'verified' : `FAILED ${v.check} (${v.field}): ${v.message}`}`
        )
      }
      return v.ok ? 0 : 1
    } finally {
      await stop()
      await wallet?.close()
    }
  }
}
