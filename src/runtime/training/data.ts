// `--data FILE.jsonl`: rows of {"text": …} (every token is trained) or {"messages": […]} (rendered
// with the model's chat template; only the assistant turns' tokens are trained, as TRL's
// assistant-only loss does). Each row becomes token ids plus which tokens are scored: position t
// is in the loss when token t+1 is trained.
import { parseWith, z } from '../../common/schema.ts'
import type { ChatMessage, Tokenizer } from '../tokenizer.ts'
import { TrainingInputError } from './trainer.ts'

export interface Example {
  ids: number[]
  /** per token: its prediction (from the token before) counts in the loss */
  trained: boolean[]
}

const MAX_ROWS = 100_000
const MAX_TEXT = 1_000_000

const Message = z.strictObject({
  role: z.enum(['system', 'user', 'assistant']),
  content: z.string().max(MAX_TEXT)
})
const Row = z.union([
  z.strictObject({ text: z.string().min(1).max(MAX_TEXT) }),
  z.strictObject({ messages: z.array(Message).min(1).max(1000) })
])

export function parseJsonl(text: string, source: string): z.infer<typeof Row>[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '')
  if (lines.length === 0) throw new TrainingInputError(`${source}: no rows`)
  if (lines.length > MAX_ROWS)
    throw new TrainingInputError(`${source}: ${lines.length} rows; at most ${MAX_ROWS}`)
  return lines.map((line, i) => {
    let v: unknown
    try {
      v = JSON.parse(line)
    } catch (err) {
      throw new TrainingInputError(`${source} line ${i + 1}: not JSON (${(err as Error).message})`)
    }
    return parseWith(Row, v, {
      at: `line ${i + 1}`,
      source,
      error: (issue) =>
        new TrainingInputError(
          `${source} line ${i + 1}: ${issue.field}: ${issue.problem}; a row is {"text": "…"} or {"messages": [{"role": "user"|"assistant"|"system", "content": "…"}]}`
        )
    })
  })
}

const startsWith = (a: number[], prefix: number[]) =>
  prefix.length <= a.length && prefix.every((x, i) => a[i] === x)

/** Token ids of a chat row with its assistant turns marked as trained. */
function chatExample(tok: Tokenizer, messages: ChatMessage[], row: number): Example {
  const ids = tok.encodeChat(messages, { addGenerationPrompt: false })
  const trained = ids.map(() => false)
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return
    // the assistant turn's tokens are those the template adds after the generation prompt;
    // this needs the template's renderings of shorter chats to be token prefixes of the full one
    const before = tok.encodeChat(messages.slice(0, i), { addGenerationPrompt: true })
    const through = tok.encodeChat(messages.slice(0, i + 1), { addGenerationPrompt: false })
    if (!startsWith(through, before) || !startsWith(ids, through))
      throw new TrainingInputError(
        `row ${row}: the chat template's rendering of the first ${i} messages is not a token prefix of the whole chat, so assistant tokens cannot be told apart`
      )
    for (let t = before.length; t < through.length; t++) trained[t] = true
  })
  if (!trained.some(Boolean))
    throw new TrainingInputError(`row ${row}: a chat row needs an assistant message to train on`)
  return { ids, trained }
}

export function encodeRows(tok: Tokenizer, rows: z.infer<typeof Row>[]): Example[] {
  return rows.map((r, i) => {
    if ('text' in r) {
      const ids = tok.encode(r.text)
      return { ids, trained: ids.map((_, t) => t > 0) }
    }
    return chatExample(tok, r.messages, i + 1)
  })
}
