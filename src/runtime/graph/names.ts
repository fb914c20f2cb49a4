// The decoder graph's input and output names, shared by the builder (decoder.ts) and the runners
// that feed it (model/runner.ts, model/loaded-model.ts).
export const INPUT_IDS = 'input_ids'
export const SEQLENS_K = 'seqlens_k'
export const TOTAL_SEQ_LEN = 'total_sequence_length'
export const LAST_INDEX = 'last_index'
export const NEW_POS = 'new_pos'
export const ROPE_COS = 'rope_cos'
export const ROPE_SIN = 'rope_sin'
/** the sliding layers' own RoPE tables (Gemma 3's local base), only when the family has them */
export const ROPE_COS_LOCAL = 'rope_cos_local'
export const ROPE_SIN_LOCAL = 'rope_sin_local'
export const LOGITS = 'logits'
export const pastKey = (l: number) => `past_key.${l}`
export const pastValue = (l: number) => `past_value.${l}`
export const presentKey = (l: number) => `present_key.${l}`
export const presentValue = (l: number) => `present_value.${l}`
export const newKey = (l: number) => `new_key.${l}`
export const newValue = (l: number) => `new_value.${l}`
export const loraA = (l: number, t: string) => `lora_A.${l}.${t}`
export const loraB = (l: number, t: string) => `lora_B.${l}.${t}`
