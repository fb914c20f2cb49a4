// The PyTorch + PEFT training goldens under test/fixtures/train (made by
// test/reference/make_train_goldens.py), one per family layout; shared by the gradient and the
// loss-sequence tests so a new fixture is checked by both.
export const TRAIN_GOLDENS = [
  'llama',
  'llama-tied',
  'qwen2',
  'mistral',
  'qwen3',
  'gemma',
  'gemma2',
  'gemma3',
  'phi3',
  'glm',
  'glm4',
  'bloom',
  'falcon',
  'falcon-7b',
  'falcon-rw'
] as const
