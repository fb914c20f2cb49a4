// Which kernels run a model's decode passes (one new token a row; prompts as
// LoadModelOptions.promptKernels says): the native engine (runtime/native/,
// issue 17) or ORT. Its own module so config code can name the choices without loading the
// engine's wrapper.
import { InvalidParametersError } from '../common/errors.ts'

/** `auto` = native where the model and machine can run it, else ORT (with an info line saying why) */
export type DecodeKernels = 'auto' | 'native' | 'ort'
export const DECODE_KERNELS: readonly DecodeKernels[] = ['auto', 'native', 'ort']

/**
 * What runs prompt passes (several new tokens a row) when decode passes run natively: ORT, or the
 * same engine (`native`: int8/int4 on AMX where the CPU has it; docs/NATIVE-DECODE.md "Prompts"),
 * or `auto`: the engine where that costs no memory and beats ORT (fp32 weights on its AVX-512
 * kernels), else ORT (int8/int4 prompts on AMX need a second, int8 copy of the weights: by name)
 */
export type PromptKernels = 'auto' | 'ort' | 'native'
export const PROMPT_KERNELS: readonly PromptKernels[] = ['auto', 'ort', 'native']

export function parseDecodeKernels(v: unknown): DecodeKernels {
  if (v === undefined || v === null) return 'auto'
  if (typeof v === 'string' && (DECODE_KERNELS as readonly string[]).includes(v)) return v as DecodeKernels
  throw new InvalidParametersError(
    `decode kernels ${JSON.stringify(v)} are not a choice; allowed: ${DECODE_KERNELS.join(', ')}`,
    { field: 'decodeKernels', value: v }
  )
}

export function parsePromptKernels(v: unknown): PromptKernels {
  if (v === undefined || v === null) return 'auto'
  if (typeof v === 'string' && (PROMPT_KERNELS as readonly string[]).includes(v)) return v as PromptKernels
  throw new InvalidParametersError(
    `prompt kernels ${JSON.stringify(v)} are not a choice; allowed: ${PROMPT_KERNELS.join(', ')}`,
    { field: 'promptKernels', value: v }
  )
}
