// Fuzz targets: every decoder of outside input, each with seeds (valid encodings the mutator
// starts from; written to test/fuzz/corpus/NAME/ by `npm run fuzz -- --save-seeds`).
// A target's decode must return or throw a typed error; see isCrash.

import { AttributionProofSchema } from '../../src/attribution/proof-schema.ts'
import { voucherFromJson } from '../../src/chain/eip712.ts'
import { silentLogger } from '../../src/common/log.ts'
import { parseWith } from '../../src/common/schema.ts'
import { decodeCanonical, encodeCanonical } from '../../src/crypto/cbor.ts'
import { cidForBytes } from '../../src/crypto/cid.ts'
import { parseKeystore } from '../../src/crypto/keystore.ts'
import { ChatCompletionRequest, CompletionRequest } from '../../src/gateway/schemas.ts'
import { responseFormatSpec } from '../../src/gateway/structured.ts'
import { configDefaults, fullConfigSchema } from '../../src/node/config/load.ts'
import { validateConfig } from '../../src/node/config/schema.ts'
import { decodeAdvert } from '../../src/protocols/adverts/codec.ts'
import { DatanetRequestSchema } from '../../src/protocols/datanet-exchange/exchange.ts'
import {
  decodeRequestFrame,
  decodeResponseFrame,
  encodeFrame,
  errorFrame,
  type RequestFrame
} from '../../src/protocols/infer/codec.ts'
import { parseReceipt } from '../../src/protocols/infer/receipt.ts'
import { parseAdapterConfig } from '../../src/runtime/adapters/peft-config.ts'
import {
  CHATML_TEMPLATE,
  makeTokenizerConfig,
  makeTokenizerJson
} from '../../src/runtime/fixtures/make-model.ts'
import { parseGgufHeader } from '../../src/runtime/formats/gguf.ts'
import { parseSafetensorsBytes } from '../../src/runtime/formats/safetensors.ts'
import { parseModelConfig } from '../../src/runtime/model/families/index.ts'
import { Tokenizer } from '../../src/runtime/tokenizer.ts'
import { advertSeed, receiptSeed } from './signed-seeds.ts'

/**
 * A decoder may refuse input only with an Error that names the problem. TypeError, RangeError
 * and ReferenceError come from the JavaScript engine (a property of undefined, an array length
 * from the input, a missing bound): those are the bugs fuzzing looks for, as is a non-Error throw.
 */
export function isCrash(err: unknown): boolean {
  if (!(err instanceof Error)) return true
  return err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError
}

export interface FuzzTarget {
  name: string
  decode(input: Uint8Array): unknown
  seeds(): Uint8Array[] | Promise<Uint8Array[]>
}

const text = (b: Uint8Array) => new TextDecoder().decode(b)
const utf8 = (s: string) => new TextEncoder().encode(s)
const json = (b: Uint8Array) => JSON.parse(text(b)) as unknown

const MODEL_JSON = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 128,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
  vocab_size: 512,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  bos_token_id: 1,
  eos_token_id: 2
}
const PEFT_JSON = {
  peft_type: 'LORA',
  base_model_name_or_path: 'tiny',
  r: 4,
  lora_alpha: 8,
  target_modules: ['q_proj', 'v_proj'],
  lora_dropout: 0,
  bias: 'none',
  task_type: 'CAUSAL_LM'
}
const REQUEST: RequestFrame = {
  t: 'request',
  body: {
    v: 1,
    jobId: `0x${'01'.repeat(16)}` as const,
    model: 'tiny',
    adapter: cidForBytes(new Uint8Array([7])),
    prompt: 'hello',
    params: { maxNewTokens: 8, temperature: 0.7, seed: 3 },
    deadline: 1_900_000_000_000,
    client: '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK',
    voucher: null
  },
  signature: new Uint8Array(64).fill(1),
  route: []
}

function safetensorsFile(): Uint8Array {
  const header = utf8(
    JSON.stringify({
      __metadata__: { format: 'pt' },
      w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] }
    })
  )
  const out = new Uint8Array(8 + header.length + 16)
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true)
  out.set(header, 8)
  return out
}

function ggufFile(): Uint8Array {
  // GGUF v3: magic, version, tensor count, kv count, one string kv, no tensors
  const key = utf8('general.architecture')
  const val = utf8('llama')
  const out = new Uint8Array(4 + 4 + 8 + 8 + 8 + key.length + 4 + 8 + val.length)
  const dv = new DataView(out.buffer)
  out.set(utf8('GGUF'), 0)
  dv.setUint32(4, 3, true)
  dv.setBigUint64(8, 0n, true)
  dv.setBigUint64(16, 1n, true)
  dv.setBigUint64(24, BigInt(key.length), true)
  out.set(key, 32)
  dv.setUint32(32 + key.length, 8, true) // string
  dv.setBigUint64(36 + key.length, BigInt(val.length), true)
  out.set(val, 44 + key.length)
  return out
}

const TOKENIZER_JSON = makeTokenizerJson(64)
const HASH = `0x${'ab'.repeat(32)}`
let model: ReturnType<typeof parseModelConfig> | undefined

export const TARGETS: FuzzTarget[] = [
  {
    name: 'cbor',
    decode: (b) => decodeCanonical(b),
    seeds: () => [encodeCanonical({ a: [1, 2n ** 60n, 'x'], b: new Uint8Array([1, 2]), c: null, d: -1.5 })]
  },
  {
    name: 'infer-request',
    decode: (b) => decodeRequestFrame(b),
    seeds: () => [encodeFrame(REQUEST)]
  },
  {
    name: 'infer-response',
    decode: (b) => decodeResponseFrame(b),
    seeds: () => [encodeFrame(errorFrame(REQUEST.body.jobId, 'BAD_REQUEST', 'no'))]
  },
  {
    name: 'advert',
    decode: (b) => decodeAdvert(b),
    seeds: async () => [await advertSeed()]
  },
  {
    name: 'datanet-request',
    decode: (b) => parseWith(DatanetRequestSchema, decodeCanonical(b), { at: 'request' }),
    seeds: () => [
      encodeCanonical({ t: 'bundle', id: `0x${'dd'.repeat(32)}`, version: 3 }),
      encodeCanonical({ t: 'chunks', refs: [{ size: 10, sha256: `0x${'ee'.repeat(32)}` }] })
    ]
  },
  {
    name: 'receipt',
    decode: (b) => parseReceipt(json(b)),
    seeds: async () => [await receiptSeed()]
  },
  {
    name: 'voucher',
    decode: (b) => voucherFromJson(json(b)),
    seeds: () => [
      utf8(
        JSON.stringify({
          client: '0x00000000000000000000000000000000000000a1',
          node: '0x00000000000000000000000000000000000000b2',
          adapterId: `0x${'aa'.repeat(32)}`,
          cumulativeAmount: '1000',
          signature: `0x${'11'.repeat(65)}`
        })
      )
    ]
  },
  {
    name: 'attribution-proof',
    decode: (b) => parseWith(AttributionProofSchema, json(b), { at: 'proof' }),
    seeds: () => [
      utf8(
        JSON.stringify({
          v: 1,
          method: 'provenance',
          outputHash: HASH,
          outputTokens: 3,
          minSpanTokens: 8,
          datanets: [{ id: HASH, version: 1, root: HASH, bp: 10000 }],
          contributors: [{ address: '0x00000000000000000000000000000000000000a1', bp: 10000 }],
          spans: []
        })
      )
    ]
  },
  {
    name: 'safetensors',
    decode: (b) => parseSafetensorsBytes('fuzz.safetensors', b),
    seeds: () => [safetensorsFile()]
  },
  { name: 'gguf', decode: (b) => parseGgufHeader(b), seeds: () => [ggufFile()] },
  {
    name: 'model-config',
    decode: (b) => parseModelConfig(json(b)),
    seeds: () => [utf8(JSON.stringify(MODEL_JSON))]
  },
  {
    name: 'peft-config',
    decode: (b) => {
      model ??= parseModelConfig(MODEL_JSON)
      return parseAdapterConfig(json(b), model, silentLogger)
    },
    seeds: () => [utf8(JSON.stringify(PEFT_JSON))]
  },
  {
    name: 'tokenizer-json',
    decode: (b) => new Tokenizer(json(b) as Record<string, unknown>, {}),
    seeds: () => [utf8(JSON.stringify(TOKENIZER_JSON))]
  },
  {
    name: 'chat-template',
    decode: (b) =>
      new Tokenizer(TOKENIZER_JSON, { ...makeTokenizerConfig(), chat_template: text(b) }).applyChatTemplate(
        [{ role: 'user', content: 'hi' }],
        { addGenerationPrompt: true }
      ),
    seeds: () => [utf8(CHATML_TEMPLATE)]
  },
  {
    name: 'config',
    decode: (b) => validateConfig(fullConfigSchema(), json(b), 'fuzz.json'),
    seeds: () => [utf8(JSON.stringify(configDefaults()))]
  },
  {
    name: 'keystore',
    decode: (b) => parseKeystore(text(b)),
    seeds: () => [
      utf8(
        JSON.stringify({
          version: 3,
          id: 'x',
          address: '',
          crypto: {
            cipher: 'aes-128-ctr',
            cipherparams: { iv: '83dbcc02d8ccb40e466191a123791e0e' },
            ciphertext: 'd172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c',
            kdf: 'scrypt',
            kdfparams: { dklen: 32, n: 2, r: 1, p: 1, salt: 'ab' },
            mac: '2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097'
          }
        })
      )
    ]
  },
  {
    // the gateway's OpenAI bodies, response_format's JSON Schema compiled as the route does
    name: 'gateway-chat',
    decode: (b) => {
      const req = ChatCompletionRequest.parse(json(b))
      return req.response_format ? responseFormatSpec(req.response_format) : undefined
    },
    seeds: () => [
      utf8(
        JSON.stringify({
          model: 'tiny',
          messages: [{ role: 'user', content: 'hi' }],
          max_completion_tokens: 16,
          response_format: {
            type: 'json_schema',
            json_schema: {
              name: 'x',
              schema: {
                type: 'object',
                properties: { a: { type: 'integer' }, b: { enum: ['x', 'y'] } },
                required: ['a']
              }
            }
          }
        })
      )
    ]
  },
  {
    name: 'gateway-completion',
    decode: (b) => CompletionRequest.parse(json(b)),
    seeds: () => [utf8(JSON.stringify({ model: 'tiny', prompt: 'hello', max_tokens: 8, temperature: 0.5 }))]
  }
]
