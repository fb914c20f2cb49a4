// Which llama.cpp architecture computes a family, and what that architecture fixes that the
// checkpoint may set otherwise. The names and keys follow llama.cpp's convert_hf_to_gguf.py
// (conversion/<family>.py) and gguf-py constants; the limits come from the model loaders and graph
// builders of the llama.cpp that node-llama-cpp ships (src/models/<arch>.cpp). A checkpoint that
// llama.cpp would compute differently is refused here with the reason, never exported to give
// other logits silently; where the difference can be folded into the weights exactly (a query
// scale), the export folds it.
import { NotSupportedError } from '../../common/errors.ts'
import type { ModelConfig } from '../model/config.ts'

export interface LlamaCppArch {
  /** general.architecture and the prefix of the hyper-parameter keys */
  arch: string
  /** q/k rows reordered from rotate-half to adjacent pairs (only the `llama` arch, rope mode 0) */
  permuteQk: boolean
  /** llama.cpp loads q, k and v as one attn_qkv tensor ([q; k; v] rows) */
  fusedQkv: boolean
  /** llama.cpp loads gate and up as one ffn_up tensor ([gate; up] rows, SwiGLU split) */
  fusedGateUp: boolean
  /** the layer norms are LayerNorm (layer_norm_epsilon) rather than RMSNorm */
  layerNorm: boolean
  /**
   * ours / llama.cpp's softmax scale of q·k: llama.cpp fixes the scale per architecture, so the
   * export multiplies the queries by this (through q_norm where the family has one, since a norm
   * after q_proj would undo a scale on its weights)
   */
  qScale: number
  /** logits llama.cpp computes differently from us for a reason the user should hear, but exports */
  warnings: string[]
}

const ARCH_OF: Record<string, string> = {
  llama: 'llama',
  qwen2: 'qwen2',
  qwen3: 'qwen3',
  gemma: 'gemma',
  gemma2: 'gemma2',
  gemma3_text: 'gemma3',
  phi3: 'phi3',
  falcon: 'falcon',
  bloom: 'bloom',
  // transformers' GlmForCausalLM (glm-4-9b-chat-hf) is llama.cpp's chatglm architecture
  glm: 'chatglm',
  glm4: 'glm4'
}

function refuse(cfg: ModelConfig, why: string, field: string, value: unknown): never {
  throw new NotSupportedError(`GGUF export of ${cfg.architecture}: ${why}`, { field, value })
}

/** llama.cpp's fixed softmax scale for q·k on this architecture. */
function llamaCppQueryScale(arch: string, cfg: ModelConfig): number {
  // gemma2/gemma3 use the 27B's n_embd / n_head, picked by layer count (46 / 62), else head_dim
  const big = (arch === 'gemma2' && cfg.numLayers === 46) || (arch === 'gemma3' && cfg.numLayers === 62)
  return 1 / Math.sqrt(big ? cfg.hiddenSize / cfg.numHeads : cfg.headDim)
}

/** The llama.cpp architecture for a parsed config, or a NotSupportedError saying why none fits. */
export function llamaCppArch(cfg: ModelConfig): LlamaCppArch {
  const arch = ARCH_OF[cfg.family]
  if (arch === undefined)
    refuse(cfg, `no llama.cpp architecture for family ${cfg.family}`, 'family', cfg.family)
  const warnings: string[] = []
  const spec: LlamaCppArch = {
    arch,
    permuteQk: arch === 'llama',
    fusedQkv: arch === 'falcon' || arch === 'bloom',
    fusedGateUp: arch === 'phi3' || arch === 'chatglm' || arch === 'glm4',
    layerNorm: cfg.norm === 'layernorm',
    qScale: cfg.attentionScale / llamaCppQueryScale(arch, cfg),
    warnings
  }
  if (cfg.positions === 'alibi' && arch !== 'bloom') {
    // Falcon-RW: llama.cpp's falcon architecture has rotary positions only
    refuse(cfg, `llama.cpp's ${arch} architecture has no ALiBi`, 'alibi', true)
  }
  const rs = cfg.ropeScaling
  if (rs !== null && !(rs.type === 'linear' || (rs.type === 'llama3' && arch === 'llama'))) {
    // longrope: llama.cpp's phi3 reads rope_factors_long/short tensors but picks between them by
    // its own context size; not exported until a test shows both engines agree
    refuse(
      cfg,
      `rope_scaling ${rs.type} is not exported (linear is, and llama3 on the llama architecture)`,
      'rope_scaling',
      rs.type
    )
  }
  const q = cfg.numHeads * cfg.headDim
  if (arch === 'gemma' || arch === 'gemma2') {
    if (!cfg.tieWordEmbeddings) {
      refuse(
        cfg,
        `llama.cpp's ${arch} architecture always uses token_embd as the output head; this checkpoint has its own lm_head (tie_word_embeddings false)`,
        'tie_word_embeddings',
        false
      )
    }
  }
  if (arch === 'gemma2' && (cfg.attnSoftcap === null || cfg.finalSoftcap === null)) {
    refuse(
      cfg,
      "llama.cpp's gemma2 architecture always soft-caps attention and final logits; this checkpoint turns one off",
      cfg.attnSoftcap === null ? 'attn_logit_softcapping' : 'final_logit_softcapping',
      null
    )
  }
  if (arch === 'gemma3' && cfg.attnSoftcap !== null) {
    refuse(
      cfg,
      "llama.cpp's gemma3 architecture has no attention soft-capping",
      'attn_logit_softcapping',
      cfg.attnSoftcap
    )
  }
  if (
    (arch === 'phi3' || arch === 'chatglm' || arch === 'falcon' || arch === 'bloom') &&
    q !== cfg.hiddenSize
  ) {
    // these builders size attn_output (and phi3 its q) as n_embd × n_embd
    refuse(
      cfg,
      `llama.cpp's ${arch} architecture needs num_attention_heads × head_dim (${q}) = hidden_size (${cfg.hiddenSize})`,
      'head_dim',
      cfg.headDim
    )
  }
  if (arch === 'falcon') {
    const c = cfg as ModelConfig & { linearBias?: boolean }
    if (c.linearBias === true)
      refuse(cfg, "llama.cpp's falcon architecture has no Linear biases", 'bias', true)
    if (!cfg.parallelBlock)
      refuse(
        cfg,
        "llama.cpp's falcon architecture computes attention and MLP in parallel only",
        'parallel_attn',
        false
      )
    if (cfg.activation === 'gelu') {
      warnings.push(
        'Falcon uses exact (erf) GELU; llama.cpp computes the tanh approximation, so logits differ by ~1e-3'
      )
    }
  }
  if (arch === 'bloom' && cfg.intermediateSize !== 4 * cfg.hiddenSize) {
    refuse(
      cfg,
      "llama.cpp's bloom architecture needs an MLP of 4 × hidden_size",
      'intermediate_size',
      cfg.intermediateSize
    )
  }
  if (cfg.slidingWindow !== null && arch !== 'gemma2' && arch !== 'gemma3') {
    // llama, qwen2 and qwen3 have no window in llama.cpp, and its phi3 turns the window off
    warnings.push(
      `llama.cpp's ${arch} architecture attends to the whole context, not a window of ${cfg.slidingWindow}: logits agree only while sequences fit in the window`
    )
  }
  if (cfg.activation === 'gelu_tanh' || cfg.activation === 'gelu') {
    warnings.push("llama.cpp's CPU GELU reads a float16 table, so logits differ from ours by ~1e-3")
  }
  return spec
}
