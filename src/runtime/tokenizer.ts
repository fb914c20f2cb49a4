// A checkpoint's tokenizer and chat template, as transformers would use them: tokenizer.json via
// @huggingface/tokenizers, the Jinja chat template from tokenizer_config.json (or
// chat_template.jinja) via @huggingface/jinja, and the model's bos/eos ids. Chat prompts are
// encoded without adding special tokens, because the template already writes them (as
// transformers' apply_chat_template(tokenize=True) does); adding them again doubles the BOS.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Template } from '@huggingface/jinja'
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers'
import { OpenLoraError } from '../common/errors.ts'

export class TokenizerError extends OpenLoraError<'TOKENIZER_INVALID'> {
  constructor(message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('TOKENIZER_INVALID', message, data, options)
  }
}

export type ChatMessage = { role: 'system' | 'user' | 'assistant'; content: string }

export interface ChatTemplateOptions {
  addGenerationPrompt: boolean
  /** extra template variables (e.g. enable_thinking); never overrides messages/tokens */
  extra?: Record<string, unknown>
}

// tokenizer.json of the largest vocabularies (Qwen2, Llama 3) is ~10 MB; this bounds a hostile file
const MAX_TOKENIZER_JSON_BYTES = 64 * 1024 * 1024
const MAX_SMALL_JSON_BYTES = 4 * 1024 * 1024

async function readJson(
  path: string,
  max: number,
  required: boolean
): Promise<Record<string, unknown> | null> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new TokenizerError(`cannot read ${path}: ${(err as Error).message}`, { file: path })
  }
  if (text.length > max) throw new TokenizerError(`${path} is over ${max} bytes`, { file: path })
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (err) {
    throw new TokenizerError(`${path} is not valid JSON (${(err as Error).message})`, { file: path })
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new TokenizerError(`${path} must hold a JSON object`, { file: path })
  }
  return v as Record<string, unknown>
}

/** tokenizer_config.json writes special tokens as strings or as AddedToken objects. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content
  }
  return null
}

function ids(v: unknown): number[] {
  const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v]
  return list.filter((x): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0)
}

function pickTemplate(v: unknown): string | null {
  if (typeof v === 'string') return v
  // a list of named templates: the default one is the chat template
  if (Array.isArray(v)) {
    const d = v.find((t) => (t as { name?: unknown })?.name === 'default') as
      | { template?: unknown }
      | undefined
    return typeof d?.template === 'string' ? d.template : null
  }
  return null
}

// The largest real vocabularies are ~262k (Gemma); the tokenizer library sizes arrays by the
// largest id, so one id of 2e7 in a 3 KB file cost 3 s (found by `npm run fuzz`), 2^31 an OOM.
const MAX_TOKEN_ID = 1 << 21

function checkTokenIds(json: Record<string, unknown>): void {
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new TokenizerError('tokenizer.json must be a JSON object', {})
  const bad = (id: unknown) => !Number.isInteger(id) || (id as number) < 0 || (id as number) >= MAX_TOKEN_ID
  const model = json.model as { vocab?: unknown } | undefined
  const vocab = model?.vocab
  const ids: unknown[] =
    vocab !== null && typeof vocab === 'object' && !Array.isArray(vocab) ? Object.values(vocab) : []
  for (const t of Array.isArray(json.added_tokens) ? json.added_tokens : [])
    ids.push((t as { id?: unknown } | null)?.id)
  const wrong = ids.find(bad)
  if (wrong !== undefined)
    throw new TokenizerError(
      `tokenizer.json has token id ${String(wrong)}; ids must be integers in [0, ${MAX_TOKEN_ID})`,
      {
        field: 'model.vocab'
      }
    )
}

export class Tokenizer {
  readonly bosTokenId: number | null
  readonly eosTokenIds: number[]
  readonly vocabSize: number
  readonly chatTemplate: string | null
  private readonly hf: HfTokenizer
  private readonly template: Template | null
  private readonly specialStrings: Record<string, string>

  constructor(
    tokenizerJson: Record<string, unknown>,
    tokenizerConfig: Record<string, unknown>,
    opts: {
      bosTokenId?: number | null
      eosTokenIds?: number[]
      chatTemplate?: string | null
    } = {}
  ) {
    checkTokenIds(tokenizerJson)
    try {
      this.hf = new HfTokenizer(tokenizerJson, tokenizerConfig)
    } catch (err) {
      throw new TokenizerError(
        `tokenizer.json could not be loaded: ${(err as Error).message}`,
        {},
        { cause: err }
      )
    }
    this.vocabSize = this.hf.get_vocab(true).size
    this.specialStrings = {}
    for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
      const s = tokenContent(tokenizerConfig[key])
      if (s !== null) this.specialStrings[key] = s
    }
    const idOf = (key: string): number | null => {
      const s = this.specialStrings[key]
      return s === undefined ? null : (this.hf.token_to_id(s) ?? null)
    }
    this.bosTokenId = opts.bosTokenId !== undefined ? opts.bosTokenId : idOf('bos_token')
    const eos = opts.eosTokenIds && opts.eosTokenIds.length > 0 ? opts.eosTokenIds : ids(idOf('eos_token'))
    this.eosTokenIds = [...new Set(eos)]
    this.chatTemplate = opts.chatTemplate ?? pickTemplate(tokenizerConfig.chat_template)
    try {
      this.template = this.chatTemplate === null ? null : new Template(this.chatTemplate)
    } catch (err) {
      throw new TokenizerError(
        `chat_template does not parse: ${(err as Error).message}`,
        { field: 'chat_template' },
        { cause: err }
      )
    }
  }

  /**
   * Reads tokenizer.json, tokenizer_config.json (optional), chat_template.jinja (optional, newer
   * transformers save the template there) and the eos/bos ids of generation_config.json or
   * config.json (generation_config wins: chat models often list their extra eos ids only there).
   */
  static async fromDir(dir: string): Promise<Tokenizer> {
    const tj = await readJson(join(dir, 'tokenizer.json'), MAX_TOKENIZER_JSON_BYTES, true)
    const tc = (await readJson(join(dir, 'tokenizer_config.json'), MAX_SMALL_JSON_BYTES, false)) ?? {}
    const gen = await readJson(join(dir, 'generation_config.json'), MAX_SMALL_JSON_BYTES, false)
    const cfg = await readJson(join(dir, 'config.json'), MAX_SMALL_JSON_BYTES, false)
    let chatTemplate = pickTemplate(tc.chat_template)
    if (chatTemplate === null) {
      try {
        chatTemplate = await readFile(join(dir, 'chat_template.jinja'), 'utf8')
      } catch {
        chatTemplate = null
      }
    }
    const eos = ids(gen?.eos_token_id).length > 0 ? ids(gen?.eos_token_id) : ids(cfg?.eos_token_id)
    const bos = ids(gen?.bos_token_id)[0] ?? ids(cfg?.bos_token_id)[0]
    return new Tokenizer(tj!, tc, { eosTokenIds: eos, bosTokenId: bos, chatTemplate })
  }

  /** Token ids of `text`; addSpecialTokens (default true) applies the post-processor (e.g. BOS). */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids
  }

  decode(tokenIds: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    // the library refuses an empty list; an empty output is an ordinary case for a server
    if (tokenIds.length === 0) return ''
    return this.hf.decode(tokenIds, { skip_special_tokens: opts.skipSpecialTokens ?? false })
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token)
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id)
  }

  /** Renders the chat template like transformers' apply_chat_template(tokenize=False). */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions): string {
    if (this.template === null) {
      throw new TokenizerError(
        'this model has no chat template (tokenizer_config.json "chat_template" or chat_template.jinja); send a plain prompt',
        {
          field: 'chat_template'
        }
      )
    }
    try {
      return this.template.render({
        ...opts.extra,
        ...this.specialStrings,
        messages,
        add_generation_prompt: opts.addGenerationPrompt
      })
    } catch (err) {
      throw new TokenizerError(
        `chat template failed to render: ${(err as Error).message}`,
        { field: 'chat_template' },
        { cause: err }
      )
    }
  }

  /** The chat prompt's token ids (no special tokens added: the template writes them). */
  encodeChat(messages: ChatMessage[], opts: ChatTemplateOptions): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), { addSpecialTokens: false })
  }
}
