// How a request asks for structured output (OpenAI's response_format, as the infer protocol
// carries it): any JSON object, or JSON matching a JSON Schema given as its JSON text (text, not
// a CBOR map, so the schema a client wrote is the schema the serving node compiles, byte for byte).
export type ResponseFormatSpec = { type: 'json_object' } | { type: 'json_schema'; schema: string }

/** A schema's JSON text may be at most this long (the request frame is ≤ 256 KiB in all). */
export const MAX_SCHEMA_CHARS = 64 * 1024
