// response_format → the infer protocol's ResponseFormatSpec. The schema is compiled here once so a
// schema the constrained decoder cannot follow is a 400 naming response_format before any job is
// sent; the serving node compiles the same text again (it trusts no client).

import type { ResponseFormatSpec } from '../runtime/constrain/format.ts'
import { MAX_SCHEMA_CHARS } from '../runtime/constrain/format.ts'
import { compileJsonSchema } from '../runtime/constrain/json-schema.ts'
import { badRequest } from './errors.ts'
import type { ResponseFormat } from './schemas.ts'

export function responseFormatSpec(rf: ResponseFormat): ResponseFormatSpec | undefined {
  if (rf.type === 'text') return undefined
  if (rf.type === 'json_object') return { type: 'json_object' }
  const schema = rf.json_schema.schema ?? {}
  const text = JSON.stringify(schema)
  if (text.length > MAX_SCHEMA_CHARS)
    throw badRequest(
      `response_format.json_schema.schema is ${text.length} characters; at most ${MAX_SCHEMA_CHARS}`,
      'response_format.json_schema.schema'
    )
  try {
    compileJsonSchema(schema)
  } catch (err) {
    throw badRequest(
      `response_format.json_schema.schema: ${(err as Error).message}`,
      'response_format.json_schema.schema',
      'unsupported_schema'
    )
  }
  return { type: 'json_schema', schema: text }
}
