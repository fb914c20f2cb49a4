import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { Tokenizer } from '../../src/runtime/tokenizer.ts'

const dir = mkdtempSync(join(tmpdir(), 'openlora-tok-'))
const MODEL = join(dir, 'tiny')
let tok: Tokenizer
test.before(async () => {
  await makeModel({ out: MODEL, preset: 'tiny', seed: 1 })
  tok = await Tokenizer.fromDir(MODEL)
})
test.after(() => rmSync(dir, { recursive: true, force: true }))

async function errorOf(
  p: Promise<unknown> | (() => unknown)
): Promise<Error & { data: Record<string, unknown> }> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (err) {
    return err as Error & { data: Record<string, unknown> }
  }
  throw new Error('expected an error')
}

test('fuzz regression: a huge token id is refused at once, not a 3 s (or OOM) array allocation', () => {
  const file = join(import.meta.dirname, '..', 'fuzz', 'regressions', 'tokenizer-json-huge-id.bin')
  const json = JSON.parse(readFileSync(file, 'utf8'))
  const t0 = performance.now()
  assert.throws(
    () => new Tokenizer(json, {}),
    (e: Error) => e.name === 'TokenizerError' && /token id 20000000/.test(e.message)
  )
  assert.ok(performance.now() - t0 < 500)
  json.model.vocab['x'] = 2 ** 31
  assert.throws(() => new Tokenizer(json, {}), /ids must be integers/)
})

test('round-trips text byte for byte, including unicode, emoji and whitespace', () => {
  const texts = [
    'Hello, how are you today?',
    'The capital of France is Paris.\n\nWhat about Germany?',
    '  leading and trailing spaces  ',
    'tabs\tand\r\nwindows newlines',
    'ünïcödé, 日本語, Ελληνικά, emoji 🙂👍🏽 and a zero-width joiner 👩‍💻',
    "It's, don't, we'll, I'm: contractions",
    '1234567890 + 3.14 = ?',
    ''
  ]
  for (const t of texts) {
    const ids = tok.encode(t)
    assert.ok(ids.every((i) => Number.isInteger(i) && i >= 0 && i < tok.vocabSize))
    assert.is(tok.decode(ids), t, JSON.stringify(t))
  }
})

test('common words are single tokens and special tokens are atomic', () => {
  const ids = tok.encode('The capital of the')
  assert.is(ids.length, 4)
  assert.equal(tok.encode('<|im_start|>user\nhi<|im_end|>').slice(0, 1), [1])
  assert.ok(tok.encode('<|im_start|>user\nhi<|im_end|>').includes(2))
  assert.is(tok.tokenToId('<|im_end|>'), 2)
  assert.is(tok.idToToken(0), '<|endoftext|>')
  assert.is(tok.decode([1, ...tok.encode('hi'), 2], { skipSpecialTokens: true }), 'hi')
  assert.is(tok.decode([1, ...tok.encode('hi'), 2]), '<|im_start|>hi<|im_end|>')
})

test('eos and bos ids come from generation_config / config', () => {
  assert.equal(tok.eosTokenIds, [2])
  assert.is(tok.bosTokenId, 1)
})

test('chat template renders exactly the hand-written ChatML string', () => {
  const msgs = [{ role: 'user' as const, content: 'What is 2+2?' }]
  assert.is(
    tok.applyChatTemplate(msgs, { addGenerationPrompt: true }),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
      '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
      '<|im_start|>assistant\n'
  )
  const withSystem = [
    { role: 'system' as const, content: 'Be brief.' },
    { role: 'user' as const, content: 'Hi' },
    { role: 'assistant' as const, content: 'Hello!' }
  ]
  assert.is(
    tok.applyChatTemplate(withSystem, { addGenerationPrompt: false }),
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n'
  )
  const ids = tok.encodeChat(msgs, { addGenerationPrompt: true })
  assert.is(ids[0], 1)
  assert.is(ids.filter((i) => i === 1).length, 3)
  assert.is(tok.decode(ids), tok.applyChatTemplate(msgs, { addGenerationPrompt: true }))
})

test('Llama-style BOS post-processor: encode adds BOS once, encodeChat does not add a second', async () => {
  const d = join(dir, 'llama-style')
  await makeModel({ out: d, preset: 'tiny', seed: 1 })
  const tj = JSON.parse(readFileSync(join(d, 'tokenizer.json'), 'utf8'))
  tj.post_processor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<|im_start|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<|im_start|>': { id: '<|im_start|>', ids: [1], tokens: ['<|im_start|>'] } }
  }
  writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(tj))
  const tc = JSON.parse(readFileSync(join(d, 'tokenizer_config.json'), 'utf8'))
  // Llama 3's shape: the template writes bos_token itself, and checks roles with raise_exception
  tc.chat_template =
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}" +
    "{{ '[' + m['role'] + '] ' + m['content'] + eos_token }}{% endfor %}{% if add_generation_prompt %}{{ '[assistant] ' }}{% endif %}"
  writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify(tc))
  writeFileSync(join(d, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: [2, 0] }))
  const t = await Tokenizer.fromDir(d)
  assert.equal(t.encode('hi').slice(0, 1), [1])
  assert.is(t.encode('hi', { addSpecialTokens: false })[0] !== 1, true)
  const chat = t.encodeChat([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true })
  assert.is(chat[0], 1)
  assert.is.not(chat[1], 1)
  assert.is(
    t.applyChatTemplate([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true }),
    '<|im_start|>[user] hi<|im_end|>[assistant] '
  )
  assert.equal(t.eosTokenIds, [2, 0])
  const e = await errorOf(() =>
    t.applyChatTemplate([{ role: 'system', content: 'x' }], { addGenerationPrompt: true })
  )
  assert.is(e.name, 'TokenizerError')
  assert.match(e.message, /no system/)
})

test('named template list, chat_template.jinja, and errors for missing/bad files', async () => {
  const d = join(dir, 'variants')
  await makeModel({ out: d, preset: 'tiny', seed: 1 })
  const tc = JSON.parse(readFileSync(join(d, 'tokenizer_config.json'), 'utf8'))
  writeFileSync(
    join(d, 'tokenizer_config.json'),
    JSON.stringify({
      ...tc,
      chat_template: [
        { name: 'tool_use', template: 'T' },
        { name: 'default', template: 'D{{ messages|length }}' }
      ]
    })
  )
  assert.is(
    (await Tokenizer.fromDir(d)).applyChatTemplate([{ role: 'user', content: 'x' }], {
      addGenerationPrompt: false
    }),
    'D1'
  )
  delete tc.chat_template
  writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify(tc))
  let e = await errorOf(async () =>
    (await Tokenizer.fromDir(d)).applyChatTemplate([], { addGenerationPrompt: true })
  )
  assert.is(e.name, 'TokenizerError')
  assert.is(e.data.field, 'chat_template')
  writeFileSync(join(d, 'chat_template.jinja'), 'J{{ add_generation_prompt }}')
  assert.is((await Tokenizer.fromDir(d)).applyChatTemplate([], { addGenerationPrompt: true }), 'Jtrue')
  writeFileSync(join(d, 'chat_template.jinja'), '{% for %}')
  e = await errorOf(Tokenizer.fromDir(d))
  assert.is(e.name, 'TokenizerError')
  writeFileSync(join(d, 'tokenizer.json'), '{"model":')
  e = await errorOf(Tokenizer.fromDir(d))
  assert.is(e.name, 'TokenizerError')
  assert.match(e.message, /tokenizer.json is not valid JSON/)
  e = await errorOf(Tokenizer.fromDir(join(dir, 'nope')))
  assert.is(e.name, 'TokenizerError')
})

test.run()
