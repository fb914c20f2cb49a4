// Turning contributed files into documents and documents into content-addressed chunks.
//
// A document is UTF-8 text. It is cut into chunks of about CHUNK_BYTES, each cut placed just
// before an ASCII whitespace byte where one lies within CHUNK_SLACK_BYTES after the target (so a
// chunk starts with the space that BPE tokenizers attach to the next word), else at the last
// whitespace before the target, else at a character boundary. ASCII bytes never occur inside a
// multi-byte UTF-8 sequence, so every chunk is valid UTF-8 on its own and carries as a string.
import { basename, extname } from 'node:path'
import { parseWith, z } from '../common/schema.ts'
import { cidForManifest } from '../crypto/cid.ts'
import { fromHex, sha256, toHex } from '../crypto/hash.ts'
import { CHUNK_BYTES, CHUNK_SLACK_BYTES, MAX_CONTRIBUTION_BYTES } from './constants.ts'
import { DatanetError } from './errors.ts'
import type { ChunkRef } from './types.ts'

export const CONTRIBUTION_KIND = 'datanet-contribution'
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

const isSpace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x09 || b === 0x0d

export function splitChunks(
  bytes: Uint8Array,
  target = CHUNK_BYTES,
  slack = CHUNK_SLACK_BYTES
): Uint8Array[] {
  const out: Uint8Array[] = []
  let pos = 0
  while (pos < bytes.length) {
    let end = pos + target
    if (end >= bytes.length) {
      out.push(bytes.subarray(pos))
      break
    }
    let cut = -1
    for (let i = end; i < Math.min(bytes.length, end + slack); i++)
      if (isSpace(bytes[i]!)) {
        cut = i
        break
      }
    if (cut < 0)
      for (let i = end - 1; i > pos; i--)
        if (isSpace(bytes[i]!)) {
          cut = i
          break
        }
    if (cut < 0) {
      // No whitespace at all: back up to the start of a UTF-8 character (not a 10xxxxxx byte).
      while (end > pos + 1 && (bytes[end]! & 0xc0) === 0x80) end--
      cut = end
    }
    out.push(bytes.subarray(pos, cut))
    pos = cut
  }
  return out
}

/** The manifest entries a contribution's CID is computed over; chunk i is named by its zero-padded index. */
export function contributionCid(chunks: readonly ChunkRef[]): string {
  return cidForManifest({
    v: 1,
    kind: CONTRIBUTION_KIND,
    files: chunks.map((c, i) => ({
      name: String(i).padStart(8, '0'),
      size: c.size,
      sha256: fromHex(c.sha256)
    }))
  })
}

export interface ChunkedDocument {
  cid: string
  chunks: ChunkRef[]
  data: Uint8Array[]
  bytes: number
}

export function chunkDocument(text: string): ChunkedDocument {
  const bytes = new Uint8Array(Buffer.from(text, 'utf8'))
  if (bytes.length === 0) throw new DatanetError('CONTRIBUTION_INVALID', 'a contribution must not be empty')
  if (bytes.length > MAX_CONTRIBUTION_BYTES)
    throw new DatanetError(
      'CONTRIBUTION_INVALID',
      `a contribution may hold at most ${MAX_CONTRIBUTION_BYTES} bytes of text, got ${bytes.length}`
    )
  const data = splitChunks(bytes)
  const chunks = data.map((d) => ({ size: d.length, sha256: toHex(sha256(d)) }))
  return { cid: contributionCid(chunks), chunks, data, bytes: bytes.length }
}

/** Text of one .jsonl row: `text`, or `content`, or `prompt` + `completion`/`response`, or `messages[].content`. */
/** A .jsonl row: a string, or an object whose text is in the first of these fields it has. */
const RowSchema = z
  .union([
    z.string(),
    z.looseObject({ text: z.string() }).transform((r) => r.text),
    z.looseObject({ content: z.string() }).transform((r) => r.content),
    z.looseObject({ prompt: z.string() }).transform((r) => {
      const answer = typeof r.completion === 'string' ? r.completion : r.response
      return typeof answer === 'string' ? `${r.prompt}\n${answer}` : r.prompt
    }),
    z
      .looseObject({ messages: z.array(z.looseObject({ content: z.string() })) })
      .transform((r) => r.messages.map((m) => m.content).join('\n'))
  ])
  .describe('a string, or an object with a string "text", "content", "prompt" or "messages[].content"')

function rowText(row: unknown, line: number, file: string): string {
  return parseWith(RowSchema, row, { error: (i) => badRow(file, line, `a row must be ${i.allowed}`) })
}

function badRow(file: string, line: number, why: string): DatanetError {
  return new DatanetError('CONTRIBUTION_INVALID', `${basename(file)} line ${line}: ${why}`, { file, line })
}

/** Documents in a contributed file: the whole text of a .txt/.md file, one per non-empty row of a .jsonl file. */
export function documentsFromFile(file: string, bytes: Uint8Array): { text: string; source: string }[] {
  const ext = extname(file).toLowerCase()
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    throw new DatanetError('CONTRIBUTION_INVALID', `${basename(file)} is not valid UTF-8 text`, { file })
  }
  if (ext === '.txt' || ext === '.md') return [{ text, source: basename(file) }]
  if (ext === '.jsonl') {
    const docs: { text: string; source: string }[] = []
    text.split('\n').forEach((l, i) => {
      if (l.trim() === '') return
      let row: unknown
      try {
        row = JSON.parse(l)
      } catch (err) {
        throw badRow(file, i + 1, `not JSON (${(err as Error).message})`)
      }
      const t = rowText(row, i + 1, file)
      if (t.length > 0) docs.push({ text: t, source: `${basename(file)}#${i + 1}` })
    })
    if (docs.length === 0) throw new DatanetError('CONTRIBUTION_INVALID', `${basename(file)} has no rows`)
    return docs
  }
  throw new DatanetError(
    'CONTRIBUTION_INVALID',
    `unsupported contribution file type "${ext}"; allowed: .txt, .md, .jsonl`,
    { file }
  )
}
