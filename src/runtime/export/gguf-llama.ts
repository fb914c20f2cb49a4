// Hugging Face Llama-family checkpoint → GGUF (llama.cpp's `llama` architecture; the other families:
// gguf-families.ts), and the tokenizer metadata every family's export shares. The names, metadata keys and the q/k row permutation mirror
// llama.cpp's convert_hf_to_gguf.py (LlamaModel) and convert_lora_to_gguf.py, so that llama.cpp
// computes the same function as our runtime on the same weights.
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { NotSupportedError } from '../../common/errors.ts'
import { createLogger } from '../../common/log.ts'
import { GgufError, type GgufKv, GgufType, type TensorDtype } from '../formats/gguf.ts'
import { type GgufTensorIn, writeGguf } from '../formats/gguf-write.ts'
import { openCheckpoint } from '../formats/safetensors.ts'
import { type ModelConfig, parseModelConfig } from '../model/config.ts'
import { llamaCppArch } from './gguf-arch.ts'

const log = createLogger('gguf-export')

// tokenizer.json of a 256k vocabulary is ~20 MB; anything far larger is not a tokenizer
const MAX_JSON_BYTES = 64 * 1024 * 1024

/** llama.cpp's llama_token_type */
const TokenType = { NORMAL: 1, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5 } as const

export const PROJ_TO_GGUF: Record<string, string> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down'
}

/** GGUF tensor name for a HF Llama tensor name, or null for tensors llama.cpp does not take. */
export function ggufTensorName(hf: string): string | null {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight'
  if (hf === 'model.norm.weight') return 'output_norm.weight'
  if (hf === 'lm_head.weight') return 'output.weight'
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf)
  if (m === null) return null
  const [, layer, mid, kind] = m
  if (mid === 'input_layernorm') return `blk.${layer}.attn_norm.${kind}`
  if (mid === 'post_attention_layernorm') return `blk.${layer}.ffn_norm.${kind}`
  const proj = /^(?:self_attn|mlp)\.(\w+_proj)$/.exec(mid)
  if (proj !== null && PROJ_TO_GGUF[proj[1]] !== undefined)
    return `blk.${layer}.${PROJ_TO_GGUF[proj[1]]}.${kind}`
  return null
}

/**
 * HF stores q/k rows with the two rotary halves of each head apart (rotate_half); llama.cpp's
 * rope (mode 0) pairs adjacent rows. This is convert_hf_to_gguf.py's `permute`:
 * reshape(heads, 2, headDim/2, cols).swapaxes(1, 2). Applies to weights, biases and LoRA B.
 */
export function permuteRotaryRows(
  data: Float32Array,
  rows: number,
  cols: number,
  heads: number
): Float32Array {
  const hd = rows / heads
  if (!Number.isInteger(hd) || hd % 2 !== 0 || data.length !== rows * cols) {
    throw new GgufError(`cannot permute ${rows}x${cols} rows into ${heads} heads of an even size`)
  }
  const half = hd / 2
  const out = new Float32Array(data.length)
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * hd + j * half + i) * cols
        out.set(data.subarray(src, src + cols), (h * hd + 2 * i + j) * cols)
      }
    }
  }
  return out
}

type Json = Record<string, unknown>
async function readJson(file: string, required: boolean): Promise<Json | null> {
  let size: number
  try {
    size = (await stat(file)).size
  } catch {
    if (required) throw new GgufError(`${file} is missing; a checkpoint needs it for the GGUF export`)
    return null
  }
  if (size > MAX_JSON_BYTES) throw new GgufError(`${file} is ${size} bytes; the limit is ${MAX_JSON_BYTES}`)
  const v: unknown = JSON.parse(await readFile(file, 'utf8'))
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new GgufError(`${file} must hold a JSON object`)
  return v as Json
}

/**
 * llama.cpp picks its pre-tokenizer regex by name; convert_hf_to_gguf.py finds the name by hashing
 * a tokenization. We recognise the HF pre_tokenizer shapes our checkpoints use instead.
 */
export function detectPreTokenizer(pre: unknown): string {
  const p = pre as Json | null | undefined
  if (p?.type === 'ByteLevel' && p.use_regex !== false) return 'gpt-2'
  if (p?.type === 'Sequence' && Array.isArray(p.pretokenizers)) {
    const parts = p.pretokenizers as Json[]
    const [a, b] = parts
    if (
      parts.length === 2 &&
      a?.type === 'Digits' &&
      a.individual_digits === true &&
      b?.type === 'ByteLevel' &&
      b.use_regex !== false
    ) {
      return 'smollm'
    }
    const split = parts.find((x) => x?.type === 'Split') as Json | undefined
    const regex = String((split?.pattern as Json | undefined)?.Regex ?? '')
    if (regex.includes('\\p{N}{1,3}') && regex.includes("(?i:'s|'t|'re|'ve|'m|'ll|'d)")) return 'llama-bpe'
    if (regex.includes('\\p{N}|') && regex.includes("(?i:'s|'t|'re|'ve|'m|'ll|'d)")) return 'qwen2'
  }
  return 'default'
}

/** The tokenizer.ggml.* and tokenizer.chat_template metadata from a byte-level BPE tokenizer.json. */
export async function tokenizerMetadata(dir: string, cfg: ModelConfig, pre?: string): Promise<GgufKv[]> {
  const tok = (await readJson(join(dir, 'tokenizer.json'), true))!
  const tcfg = (await readJson(join(dir, 'tokenizer_config.json'), false)) ?? {}
  const model = tok.model as Json | undefined
  if (model?.type !== 'BPE' || typeof model.vocab !== 'object' || !Array.isArray(model.merges)) {
    throw new NotSupportedError(
      `tokenizer.json: model type ${JSON.stringify(model?.type)} cannot be exported; allowed: BPE with vocab and merges`
    )
  }
  const n = cfg.vocabSize
  const tokens: string[] = Array.from({ length: n }, (_, i) => `[PAD${i}]`)
  const types: number[] = new Array(n).fill(TokenType.UNUSED)
  const put = (content: unknown, id: unknown, type: number): void => {
    if (typeof content !== 'string' || typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= n) {
      throw new GgufError(
        `tokenizer.json: token ${JSON.stringify(content)} has id ${id}, outside 0..${n - 1}`
      )
    }
    tokens[id] = content
    types[id] = type
  }
  for (const [content, id] of Object.entries(model.vocab as Json)) put(content, id, TokenType.NORMAL)
  const byContent = new Map<string, number>()
  for (const t of (tok.added_tokens ?? []) as Json[]) {
    put(t.content, t.id, t.special === true ? TokenType.CONTROL : TokenType.USER_DEFINED)
    byContent.set(String(t.content), Number(t.id))
  }
  // merges are "a b" strings in older tokenizer.json files and [a, b] pairs in newer ones
  const merges = (model.merges as unknown[]).map((m) => (Array.isArray(m) ? m.join(' ') : String(m)))
  const specialId = (key: string): number | null => {
    const v = tcfg[key]
    const content =
      typeof v === 'string' ? v : typeof (v as Json)?.content === 'string' ? (v as Json).content : null
    return typeof content === 'string' ? (byContent.get(content) ?? null) : null
  }
  const bos = cfg.bosTokenId ?? specialId('bos_token')
  const eos = cfg.eosTokenIds[0] ?? specialId('eos_token')
  const kvs: GgufKv[] = [
    { key: 'tokenizer.ggml.model', type: GgufType.STRING, value: 'gpt2' },
    { key: 'tokenizer.ggml.pre', type: GgufType.STRING, value: pre ?? detectPreTokenizer(tok.pre_tokenizer) },
    { key: 'tokenizer.ggml.tokens', type: GgufType.ARRAY, itemType: GgufType.STRING, value: tokens },
    { key: 'tokenizer.ggml.token_type', type: GgufType.ARRAY, itemType: GgufType.INT32, value: types },
    { key: 'tokenizer.ggml.merges', type: GgufType.ARRAY, itemType: GgufType.STRING, value: merges }
  ]
  const u32 = (key: string, value: number | null): void => {
    if (value !== null) kvs.push({ key, type: GgufType.UINT32, value })
  }
  u32('tokenizer.ggml.bos_token_id', bos)
  u32('tokenizer.ggml.eos_token_id', eos)
  u32('tokenizer.ggml.unknown_token_id', specialId('unk_token'))
  u32('tokenizer.ggml.padding_token_id', specialId('pad_token'))
  for (const k of ['add_bos_token', 'add_eos_token'] as const) {
    if (typeof tcfg[k] === 'boolean')
      kvs.push({ key: `tokenizer.ggml.${k}`, type: GgufType.BOOL, value: tcfg[k] })
  }
  if (typeof tcfg.chat_template === 'string') {
    kvs.push({ key: 'tokenizer.chat_template', type: GgufType.STRING, value: tcfg.chat_template })
  }
  return kvs
}

/** general.* and llama.* hyper-parameters, as convert_hf_to_gguf.py writes them for LlamaModel. */
export function llamaMetadata(cfg: ModelConfig, name: string, dtype: TensorDtype): GgufKv[] {
  const u32 = (key: string, value: number): GgufKv => ({ key, type: GgufType.UINT32, value })
  const f32 = (key: string, value: number): GgufKv => ({ key, type: GgufType.FLOAT32, value })
  const kvs: GgufKv[] = [
    { key: 'general.architecture', type: GgufType.STRING, value: 'llama' },
    { key: 'general.type', type: GgufType.STRING, value: 'model' },
    { key: 'general.name', type: GgufType.STRING, value: name },
    // llama_ftype: 0 = ALL_F32, 1 = MOSTLY_F16 (norms stay F32, as in convert_hf_to_gguf.py)
    u32('general.file_type', { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7 }[dtype]),
    u32('llama.context_length', cfg.maxPositionEmbeddings),
    u32('llama.embedding_length', cfg.hiddenSize),
    u32('llama.block_count', cfg.numLayers),
    u32('llama.feed_forward_length', cfg.intermediateSize),
    u32('llama.attention.head_count', cfg.numHeads),
    u32('llama.attention.head_count_kv', cfg.numKvHeads),
    f32('llama.attention.layer_norm_rms_epsilon', cfg.rmsNormEps),
    f32('llama.rope.freq_base', cfg.ropeTheta),
    u32('llama.rope.dimension_count', cfg.headDim),
    u32('llama.vocab_size', cfg.vocabSize)
  ]
  if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize) {
    kvs.push(u32('llama.attention.key_length', cfg.headDim), u32('llama.attention.value_length', cfg.headDim))
  }
  if (cfg.ropeScaling?.type === 'linear') {
    kvs.push(
      { key: 'llama.rope.scaling.type', type: GgufType.STRING, value: 'linear' },
      f32('llama.rope.scaling.factor', cfg.ropeScaling.factor)
    )
  }
  // llama3 scaling has no metadata key: llama.cpp reads it as the rope_freqs tensor (llamaRopeFreqs)
  return kvs
}

/**
 * llama.cpp divides each rotary frequency by a per-dimension factor from the `rope_freqs` tensor;
 * for rope_scaling llama3 convert_hf_to_gguf.py computes those factors like this.
 */
export function llamaRopeFreqs(cfg: ModelConfig): Float32Array | null {
  const s = cfg.ropeScaling
  if (s?.type !== 'llama3') return null
  const dim = cfg.headDim
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor
  const out = new Float32Array(dim / 2)
  for (let i = 0; i < dim / 2; i++) {
    // torch computes the frequency in fp32; Math.fround keeps the band edges where it puts them
    const freq = Math.fround(1 / Math.fround(cfg.ropeTheta ** Math.fround((2 * i) / dim)))
    const wavelen = (2 * Math.PI) / freq
    if (wavelen < highWavelen) out[i] = 1
    else if (wavelen > lowWavelen) out[i] = s.factor
    else {
      const smooth =
        (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
      out[i] = 1 / ((1 - smooth) / s.factor + smooth)
    }
  }
  return out
}

export interface GgufExportOptions {
  /** tensor encoding of the 2-D weights; 1-D tensors (norms, biases) always stay F32 */
  dtype?: TensorDtype
  /** general.name; defaults to the checkpoint's _name_or_path or 'model' */
  name?: string
  /** tokenizer.ggml.pre override (llama.cpp pre-tokenizer name) */
  pre?: string
  /** bytes written of the file's total, after each tensor */
  onProgress?: (written: number, total: number) => void
}

export async function loadModelConfigFromDir(dir: string): Promise<ModelConfig> {
  return parseModelConfig(
    await readJson(join(dir, 'config.json'), true),
    (await readJson(join(dir, 'generation_config.json'), false)) ?? undefined
  )
}

/** Writes a HF Llama-family checkpoint directory as one GGUF v3 file llama.cpp loads. */
export async function exportCheckpointToGguf(
  dir: string,
  outFile: string,
  opts: GgufExportOptions = {}
): Promise<{ bytes: number; tensors: number; config: ModelConfig }> {
  const dtype = opts.dtype ?? 'F32'
  const cfg = await loadModelConfigFromDir(dir)
  // this writer is llama.cpp's `llama` architecture; every other family has its own architecture
  // there, written by exportModelToGguf (gguf-families.ts), which also takes Llama checkpoints
  if (cfg.family !== 'llama') {
    throw new NotSupportedError(
      `the llama GGUF writer takes the Llama family (llama, mistral, deepseek); this checkpoint is ${cfg.family}: use exportModelToGguf (npm run export-gguf)`,
      { field: 'model_type', value: cfg.modelType }
    )
  }
  // what llama.cpp's llama architecture cannot compute (longrope, …) is refused naming the key
  llamaCppArch(cfg)
  if (cfg.slidingWindow !== null) {
    log.warn('llama.cpp llama architecture has no sliding window; keep sequences within it', {
      slidingWindow: cfg.slidingWindow
    })
  }
  // tensors are read (and permuted) one at a time as they are written: a 1B checkpoint is 5 GB
  // as fp32, an 8B one 32 GB, and the file never needs more than one tensor in memory
  const checkpoint = await openCheckpoint(dir)
  try {
    const tensors: GgufTensorIn[] = []
    for (const hf of checkpoint.names()) {
      const name = ggufTensorName(hf)
      if (name === null) {
        if (!hf.endsWith('rotary_emb.inv_freq')) log.warn('tensor not exported', { tensor: hf })
        continue
      }
      if (name === 'output.weight' && cfg.tieWordEmbeddings) continue // llama.cpp reuses token_embd
      const shape = checkpoint.info(hf)!.shape
      const rows = shape[0]!
      const cols = shape.length === 2 ? shape[1]! : 1
      const heads = /\.attn_q\./.test(name) ? cfg.numHeads : /\.attn_k\./.test(name) ? cfg.numKvHeads : 0
      const data = () => {
        const d = checkpoint.read(hf)
        return heads > 0 ? permuteRotaryRows(d, rows, cols, heads) : d
      }
      tensors.push({ name, shape, dtype: shape.length === 1 ? 'F32' : dtype, data })
    }
    const ropeFreqs = llamaRopeFreqs(cfg)
    if (ropeFreqs !== null)
      tensors.push({ name: 'rope_freqs.weight', shape: [ropeFreqs.length], dtype: 'F32', data: ropeFreqs })
    if (!tensors.some((t) => t.name === 'token_embd.weight')) {
      throw new GgufError(`${dir}: no model.embed_tokens.weight; is this a Llama-family checkpoint?`)
    }
    const name = opts.name ?? cfg.nameOrPath ?? 'model'
    const metadata = [...llamaMetadata(cfg, name, dtype), ...(await tokenizerMetadata(dir, cfg, opts.pre))]
    const { bytes } = await writeGguf(outFile, metadata, tensors, opts.onProgress)
    log.info('wrote GGUF model', { file: outFile, bytes, tensors: tensors.length, dtype })
    return { bytes, tensors: tensors.length, config: cfg }
  } finally {
    checkpoint.close()
  }
}
