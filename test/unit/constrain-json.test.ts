// Constrained decoding (src/runtime/constrain): the JSON automaton accepts exactly the compact
// JSON a schema allows, unsupported keywords are refused by name, and on the real tiny model
// (random weights, sampling at temperature 1) every output parses and validates against its
// schema (ajv, an independent validator), including when max tokens is tight.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  canFinish,
  initialState,
  minCompletion,
  stepText
} from '../../src/runtime/constrain/json-automaton.ts'
import { compileJsonSchema } from '../../src/runtime/constrain/json-schema.ts'
import { compileFormat, JsonConstraint, Vocabulary } from '../../src/runtime/constrain/token-mask.ts'
import { Engine } from '../../src/runtime/engine/engine.ts'
import type { TokenEvent } from '../../src/runtime/engine/types.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { type LoadedModel, loadModel } from '../../src/runtime/model/index.ts'
import { sample } from '../../src/runtime/sampling.ts'
import { Tokenizer } from '../../src/runtime/tokenizer.ts'

const SCHEMAS: Record<string, object> = {
  person: {
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 12 },
      age: { type: 'integer' },
      admin: { type: 'boolean' }
    },
    required: ['name', 'age'],
    additionalProperties: false
  },
  tags: {
    type: 'array',
    items: { type: 'string', enum: ['red', 'green', 'blue'] },
    minItems: 1,
    maxItems: 4
  },
  choice: {
    type: 'object',
    properties: {
      kind: { const: 'point' },
      x: { type: 'number' },
      y: { anyOf: [{ type: 'number' }, { type: 'null' }] }
    },
    required: ['kind', 'x', 'y']
  },
  nested: {
    type: 'object',
    properties: {
      items: { type: 'array', items: { $ref: '#/$defs/item' }, maxItems: 3 },
      note: { type: ['string', 'null'], maxLength: 8 }
    },
    required: ['items'],
    $defs: {
      item: {
        type: 'object',
        properties: { id: { type: 'integer' }, ok: { type: 'boolean' } },
        required: ['id', 'ok']
      }
    }
  },
  free: { type: 'object' }
}

const accepts = (schema: object, text: string): boolean => {
  const s = stepText(initialState(compileJsonSchema(schema)), text)
  return s.length > 0 && canFinish(s)
}

test('the automaton accepts what the schema allows and nothing else', () => {
  const p = SCHEMAS.person!
  assert.ok(accepts(p, '{"name":"Ann","age":31}'))
  assert.ok(accepts(p, '{"age":-4,"name":"","admin":false}'))
  assert.not.ok(accepts(p, '{"name":"Ann"}'), 'age is required')
  assert.not.ok(accepts(p, '{"name":"Ann","age":3.5}'), 'age is an integer')
  assert.not.ok(accepts(p, '{"name":"Ann","age":3,"x":1}'), 'no other keys')
  assert.not.ok(accepts(p, '{"name":"Ann","name":"Bo","age":3}'), 'no repeated key')
  assert.not.ok(accepts(p, '{"name":"0123456789abc","age":1}'), 'maxLength 12')
  assert.not.ok(accepts(p, '{"name": "Ann","age":1}'), 'compact JSON: no whitespace')
  assert.ok(accepts(SCHEMAS.tags!, '["red","blue"]'))
  assert.not.ok(accepts(SCHEMAS.tags!, '[]'))
  assert.not.ok(accepts(SCHEMAS.tags!, '["red","red","red","red","red"]'))
  assert.ok(accepts(SCHEMAS.choice!, '{"kind":"point","x":1.25,"y":null}'))
  assert.not.ok(accepts(SCHEMAS.choice!, '{"kind":"line","x":1,"y":2}'))
  assert.ok(accepts(SCHEMAS.nested!, '{"items":[{"id":1,"ok":true}],"note":null}'))
  assert.ok(accepts(SCHEMAS.free!, '{"a":[1,{"b":"\\u00e9"}],"c":null}'))
  assert.ok(accepts({ type: 'number' }, '-0.5'))
  assert.not.ok(accepts({ type: 'number' }, '01'))
})

test('the fewest characters to finish are counted exactly', () => {
  const root = compileJsonSchema(SCHEMAS.person!)
  assert.is(minCompletion(initialState(root)), '{"name":"","age":0}'.length)
  assert.is(minCompletion(stepText(initialState(root), '{"name":"A')), '","age":0}'.length)
  assert.is(minCompletion(stepText(initialState(root), '{"name":"A","age":12')), 1)
})

test('keywords that could make valid-looking output invalid are refused by name', () => {
  for (const [kw, schema] of [
    ['pattern', { type: 'string', pattern: '^a' }],
    ['minimum', { type: 'integer', minimum: 3 }],
    ['format', { type: 'string', format: 'date' }]
  ] as const)
    assert.throws(() => compileJsonSchema(schema), new RegExp(`"${kw}" is not supported`))
  assert.throws(() => compileJsonSchema({ $ref: '#/nowhere' }), /not supported/)
})

const dir = mkdtempSync(join(tmpdir(), 'constrain-'))
let model: LoadedModel
let engine: Engine

test.before(async () => {
  await makeModel({ out: join(dir, 'model'), preset: 'tiny', seed: 3 })
  model = await loadModel(join(dir, 'model'), {
    cacheDir: join(dir, 'cache'),
    maxBatch: 8,
    maxSeqLen: 256,
    intraOpThreads: 1,
    pool: { slots: 2, maxRank: 8, targets: [] }
  })
  Object.assign(model, { tokenizer: await Tokenizer.fromDir(join(dir, 'model')) })
  engine = new Engine(
    { limits: { maxBatch: 8, maxSeqLen: 256, maxQueued: 64 } },
    { models: [{ model }], sample }
  )
  engine.start()
})

test.after(async () => {
  await engine?.stop()
  await model?.dispose()
  rmSync(dir, { recursive: true, force: true })
})

async function generateText(
  schema: object | null,
  seed: number,
  maxNewTokens: number
): Promise<{ text: string; reason: string }> {
  const events = engine.generate({
    model: model.modelId,
    prompt: 'Give me the record as JSON:',
    params: {
      maxNewTokens,
      temperature: 1,
      seed,
      responseFormat:
        schema === null ? { type: 'json_object' } : { type: 'json_schema', schema: JSON.stringify(schema) }
    }
  })
  for await (const ev of events as AsyncIterable<TokenEvent>)
    if (ev.type === 'done') return { text: ev.text, reason: ev.finishReason }
  throw new Error('no done event')
}

test('on the tiny model every output parses and validates against its schema', async () => {
  const ajv = new Ajv({ strict: false })
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    const validate = ajv.compile(schema)
    for (const seed of [1, 2, 3]) {
      const { text } = await generateText(schema, seed, 96)
      let value: unknown
      try {
        value = JSON.parse(text)
      } catch {
        assert.unreachable(`${name} seed ${seed}: not JSON: ${text}`)
      }
      assert.ok(validate(value), `${name} seed ${seed}: ${text} — ${JSON.stringify(validate.errors)}`)
    }
  }
})

test('json_object mode and a tight token budget still end in complete JSON', async () => {
  for (const seed of [4, 5, 6]) {
    const { text } = await generateText(null, seed, 24)
    const v = JSON.parse(text) as unknown
    assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), text)
  }
  // the budget forces the object closed: 19 characters is the shortest valid person
  const { text } = await generateText(SCHEMAS.person!, 9, 20)
  assert.ok(new Ajv({ strict: false }).validate(SCHEMAS.person!, JSON.parse(text)), text)
})

test('an unsupported schema is a clear INVALID_PARAMETERS before anything runs', () => {
  assert.throws(
    () =>
      engine.generate({
        model: model.modelId,
        prompt: 'x',
        params: {
          maxNewTokens: 4,
          responseFormat: { type: 'json_schema', schema: '{"type":"string","pattern":"a"}' }
        }
      }),
    /pattern/
  )
})

test('the trie walk (and its fast path inside strings) allows exactly the tokens a brute-force check does', async () => {
  const tok = await Tokenizer.fromDir(join(dir, 'model'))
  const vocab = new Vocabulary(tok, model.config.vocabSize)
  for (const [schema, prefix, left] of [
    [SCHEMAS.free!, '{"ab', 50],
    [SCHEMAS.free!, '{"a":"hello wor', 50],
    [SCHEMAS.free!, '{"a":"x', 3],
    [SCHEMAS.person!, '{"name":"Al', 40],
    [SCHEMAS.person!, '{"name":"Al","age":1', 40],
    [SCHEMAS.nested!, '{"items":[{"id":', 40]
  ] as const) {
    const root = compileFormat({ type: 'json_schema', schema: JSON.stringify(schema) })
    const c = new JsonConstraint(root, vocab, model.config.eosTokenIds)
    // reach the prefix one character token at a time
    for (const ch of prefix) c.advance(tok.encode(ch, { addSpecialTokens: false })[0]!)
    const start = stepText(initialState(root), prefix)
    const brute: number[] = []
    for (let id = 0; id < vocab.size; id++) {
      const t = vocab.texts[id]!
      if (t === '') continue
      const next = stepText(start, t)
      if (next.length > 0 && minCompletion(next) <= left - 1) brute.push(id)
    }
    const got = c.allowed(left).ids.sort((a, b) => a - b)
    assert.equal(got, brute, `${prefix} with ${left} tokens left`)
    assert.ok(brute.length > 0)
  }
})

test.run()
