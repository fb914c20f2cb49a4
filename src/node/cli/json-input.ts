// JSON a user hands the CLI (a --messages file, a receipt to verify, output ids): read with a
// size limit, parsed, then checked by a zod schema, so a bad file fails with the key path, the
// value, what is allowed and the file's name, like a bad config key.
import { readFile } from 'node:fs/promises'
import { messageOf, parseWith, type z } from '../../common/schema.ts'
import { UsageError } from './command.ts'

export async function readJsonInput<S extends z.ZodType>(
  file: string,
  schema: S,
  opts: { what: string; maxBytes: number; hint?: string }
): Promise<z.output<S>> {
  const text = await readFile(file, 'utf8').catch((err) => {
    throw new UsageError(`${opts.what} ${file}: ${(err as Error).message}`)
  })
  if (text.length > opts.maxBytes) throw new UsageError(`${opts.what} ${file} is over ${opts.maxBytes} bytes`)
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    throw new UsageError(`${opts.what} ${file} is not JSON${opts.hint ? `: expected ${opts.hint}` : ''}`)
  }
  return parseWith(schema, v, {
    source: file,
    error: (issue) => new UsageError(`${opts.what} ${messageOf(issue)}`)
  })
}
