#!/usr/bin/env python3
"""Golden fixtures for the model families (test/unit/runtime-families.test.ts).

For each family: a tiny random checkpoint in exact Hugging Face layout (save_pretrained,
safetensors, float32), a tokenizer with the family's chat template, two PEFT LoRA adapters
(attention-only; all-linear with rsLoRA) with random non-zero lora_B, and golden outputs from
transformers + peft with eager attention: logits at the last prompt position and 12 greedy tokens
(full recompute per token), for the base model and each adapter, plus the rendered chat prompt.

Run once, outside CI (CI never installs PyTorch; the outputs are committed):
  python3 -m venv /work/venv-ref && /work/venv-ref/bin/pip install torch transformers peft tokenizers
  /work/venv-ref/bin/python test/reference/make_family_goldens.py [family ...]
Tested with torch 2.13 (CPU), transformers 5.18, peft 0.21, tokenizers 0.23.
"""
import json
import os
import shutil
import sys

import torch
import transformers as T
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'families')
VOCAB = 320
PROMPT = [5, 77, 140, 33, 260, 18, 301, 92, 47, 199, 11, 150]
GREEDY = 12

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
GEMMA = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim"
    " + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)
PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)

COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_attention_heads=4, max_position_embeddings=256,
              initializer_range=0.1, bos_token_id=1, eos_token_id=2, pad_token_id=0)

# Tied embeddings scaled by sqrt(hidden) make a random tiny Gemma 2/3 repeat its last input token
# whatever the seed; those two are untied (Gemma v1 keeps the tied head, with larger weights).
# family -> (config class, config kwargs, specials [bos, eos, ...], template, attention-only targets)
FAMILIES = {
    'qwen3': (T.Qwen3Config, dict(num_hidden_layers=2, num_key_value_heads=2, head_dim=24, rope_theta=10000.0,
                                  tie_word_embeddings=False),
              ['<|endoftext|>', '<|im_start|>', '<|im_end|>'], CHATML, ['q_proj', 'k_proj', 'v_proj', 'o_proj']),
    'gemma': (T.GemmaConfig, dict(num_hidden_layers=2, num_key_value_heads=1, head_dim=32, hidden_act='gelu_pytorch_tanh',
                                  initializer_range=0.4),
              ['<bos>', '<eos>', '<start_of_turn>', '<end_of_turn>'], GEMMA, ['q_proj', 'v_proj']),
    'gemma2': (T.Gemma2Config, dict(num_hidden_layers=2, num_key_value_heads=2, head_dim=16, sliding_window=4,
                                    query_pre_attn_scalar=24, attn_logit_softcapping=5.0, final_logit_softcapping=4.0,
                                    tie_word_embeddings=False, initializer_range=0.2),
               ['<bos>', '<eos>', '<start_of_turn>', '<end_of_turn>'], GEMMA, ['q_proj', 'k_proj', 'v_proj', 'o_proj']),
    'gemma3_text': (T.Gemma3TextConfig, dict(num_hidden_layers=3, num_key_value_heads=2, head_dim=16, sliding_window=4,
                                             query_pre_attn_scalar=16, tie_word_embeddings=False, initializer_range=0.2,
                                             layer_types=['sliding_attention', 'full_attention', 'sliding_attention'],
                                             rope_parameters={'sliding_attention': {'rope_type': 'default', 'rope_theta': 10000.0},
                                                              'full_attention': {'rope_type': 'default', 'rope_theta': 1000000.0}}),
                    ['<bos>', '<eos>', '<start_of_turn>', '<end_of_turn>'], GEMMA, ['q_proj', 'k_proj', 'v_proj', 'o_proj']),
    'phi3': (T.Phi3Config, dict(num_hidden_layers=2, num_key_value_heads=2, sliding_window=5, tie_word_embeddings=False),
             ['<|endoftext|>', '<|endoftext|>', '<|user|>', '<|assistant|>', '<|end|>', '<|system|>'], PHI3, ['qkv_proj', 'o_proj']),
}

FALCON = (
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Falcon: ' + message['content'] + '\\n' }}"
    "{% else %}{{ message['content'] + '\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Falcon:' }}{% endif %}"
)
FALCON_BASE = dict(num_hidden_layers=2, ffn_hidden_size=96, alibi=False, drop=['intermediate_size'])
FAMILIES.update({
    # 7B style: multi-query, attention and MLP in parallel from one input_layernorm
    'falcon': (T.FalconConfig, dict(FALCON_BASE, multi_query=True, parallel_attn=True, new_decoder_architecture=False,
                                    bias=False, tie_word_embeddings=False, initializer_range=0.2),
               ['<|endoftext|>', '<|endoftext|>'], FALCON, ['query_key_value', 'dense']),
    # 40B/180B style: grouped K/V in one query_key_value, ln_attn + ln_mlp; biases on to cover them
    'falcon_new': (T.FalconConfig, dict(FALCON_BASE, new_decoder_architecture=True, num_kv_heads=2, bias=True,
                                        tie_word_embeddings=False, initializer_range=0.2),
                   ['<|endoftext|>', '<|endoftext|>'], FALCON, ['query_key_value', 'dense']),
})
# Falcon-RW: ALiBi, attention then MLP in sequence, per-head query_key_value, biases. 16 heads so
# the slopes (2^-k/2) are not powers of two and build_alibi_tensor's bfloat16 rounding shows.
FAMILIES['falcon_rw'] = (T.FalconConfig, dict(FALCON_BASE, alibi=True, multi_query=False, parallel_attn=False,
                                              new_decoder_architecture=False, bias=True, num_attention_heads=16,
                                              tie_word_embeddings=False, initializer_range=0.2),
                         ['<|endoftext|>', '<|endoftext|>'], FALCON, ['query_key_value', 'dense'])
FAMILIES['bloom'] = (T.BloomConfig, dict(n_layer=2, n_head=4, layer_norm_epsilon=1e-5, tie_word_embeddings=False,
                                          initializer_range=0.2, drop=['intermediate_size', 'num_attention_heads',
                                                                        'max_position_embeddings']),
                     ['<s>', '</s>', '<pad>'], CHATML.replace('<|im_start|>', '<s>').replace('<|im_end|>', '</s>'),
                     ['query_key_value', 'dense'])
GLM_CHAT = (
    "[gMASK]<sop>{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
GLM_SPECIALS = ['<sop>', '<|endoftext|>', '[gMASK]', '<|user|>', '<|assistant|>', '<|system|>']
FAMILIES['glm'] = (T.GlmConfig, dict(num_hidden_layers=2, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-5,
                                     initializer_range=0.2),
                   GLM_SPECIALS, GLM_CHAT, ['q_proj', 'k_proj', 'v_proj', 'o_proj'])
FAMILIES['glm4'] = (T.Glm4Config, dict(num_hidden_layers=2, num_key_value_heads=2, head_dim=24, rms_norm_eps=1e-5,
                                       initializer_range=0.2),
                    GLM_SPECIALS, GLM_CHAT, ['q_proj', 'v_proj'])
# Phi-4-mini style: 3/4 of each head rotates (rotate-half within the rotary part)
FAMILIES['phi3_partial'] = (T.Phi3Config, dict(num_hidden_layers=2, num_key_value_heads=2, head_dim=32, initializer_range=0.2,
                                               rope_parameters={'rope_type': 'default', 'rope_theta': 10000.0,
                                                                'partial_rotary_factor': 0.75}),
                            ['<|endoftext|>', '<|endoftext|>', '<|user|>', '<|assistant|>', '<|end|>', '<|system|>'], PHI3,
                            ['qkv_proj', 'o_proj'])
# Phi-3 LongRoPE (Phi-3-mini-128k style), one fixture per factor set: transformers takes
# short_factor while a forward pass stays within original_max_position_embeddings and long_factor
# beyond; the runtime picks by a session's capacity. `phi3_longrope` keeps the original context at
# max_position_embeddings (256 ≥ any capacity the tests use: short factors) with an explicit
# attention_factor; `phi3_longrope_long` has an original context of 8, so the 12-token prompt (and
# every capacity) is past it: long factors, and the attention factor derived from 256 / 8.
_LR = dict(num_hidden_layers=2, num_key_value_heads=2, initializer_range=0.2)
_SHORT = [1.0, 1.3, 1.7, 2.2, 2.9, 3.5, 4.4, 5.0]
_LONG = [1.1, 2.0, 3.1, 4.6, 6.0, 8.3, 11.0, 16.0]
FAMILIES['phi3_longrope'] = (T.Phi3Config, dict(_LR, original_max_position_embeddings=256, rope_parameters={
    'rope_type': 'longrope', 'rope_theta': 10000.0, 'short_factor': _SHORT, 'long_factor': _LONG,
    'attention_factor': 1.1, 'original_max_position_embeddings': 256}),
    ['<|endoftext|>', '<|endoftext|>', '<|user|>', '<|assistant|>', '<|end|>', '<|system|>'], PHI3, ['qkv_proj', 'o_proj'])
FAMILIES['phi3_longrope_long'] = (T.Phi3Config, dict(_LR, original_max_position_embeddings=8, rope_parameters={
    'rope_type': 'longrope', 'rope_theta': 10000.0, 'short_factor': _SHORT, 'long_factor': _LONG,
    'original_max_position_embeddings': 8}),
    ['<|endoftext|>', '<|endoftext|>', '<|user|>', '<|assistant|>', '<|end|>', '<|system|>'], PHI3, ['qkv_proj', 'o_proj'])
# fixture name -> registry family, where they differ
FAMILY_OF = {'falcon_new': 'falcon', 'falcon_rw': 'falcon', 'phi3_partial': 'phi3', 'phi3_longrope': 'phi3',
             'phi3_longrope_long': 'phi3'}
# transformers 5.18's eager Falcon adds the ALiBi bias twice (into the scores, and again through the
# causal mask it folds alibi / sqrt(head_dim) into); its SDPA path adds it once, as Falcon-RW's own
# code did, so Falcon-RW's goldens come from SDPA (the math kernel in float32 on CPU)
ATTN = {'falcon_rw': 'sdpa'}

CORPUS = [
    'the quick brown fox jumps over the lazy dog', 'open models serve many adapters at once',
    'a small model with random weights', 'sliding windows and soft caps', 'hello world, hello node',
] * 20


def tokenizer(dir, specials, template):
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    uniq = list(dict.fromkeys(specials))
    specials_ordered = ['<pad>'] + uniq
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials_ordered,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    fast = T.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=specials[0], eos_token=specials[1],
                                     pad_token='<pad>', chat_template=template)
    fast.save_pretrained(dir)
    return fast


@torch.no_grad()
def run(model, ids):
    logits = model(torch.tensor([ids])).logits[0, -1].float()
    seq = list(ids)
    out = []
    for _ in range(GREEDY):
        nxt = int(torch.argmax(model(torch.tensor([seq])).logits[0, -1]))
        out.append(nxt)
        seq.append(nxt)
    top = torch.topk(logits, 2).values
    return {'logits': [float(v) for v in logits], 'tokens': out, 'margin': float(top[0] - top[1])}


def perturb(model, seed, std=0.1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # norms (incl. Gemma's 1 + w) and biases: random, not ones/zeros
                p.add_(torch.randn(p.shape, generator=g) * std)


def make(family):
    cls, kw, specials, template, attn_targets = FAMILIES[family]
    dir = os.path.join(OUT, family)
    shutil.rmtree(dir, ignore_errors=True)
    os.makedirs(dir)
    for seed in range(1, 20):
        torch.manual_seed(seed)
        args = {**COMMON, **kw}
        for k in args.pop('drop', []):
            args.pop(k)
        cfg = cls(**args)
        cfg._attn_implementation = ATTN.get(family, 'eager')
        model = T.AutoModelForCausalLM.from_config(cfg, attn_implementation=ATTN.get(family, 'eager'),
                                                   dtype=torch.float32).eval()
        perturb(model, seed)
        base = run(model, PROMPT)
        if len(set(base['tokens'])) >= 4 and base['margin'] >= 0.01:
            break
    else:
        raise SystemExit(f'{family}: every seed degenerates')
    model.save_pretrained(dir, safe_serialization=True)
    tok = tokenizer(dir, specials, template)
    chat = [{'role': 'user', 'content': 'hello world'}]
    rendered = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    goldens = {'family': FAMILY_OF.get(family, family), 'seed': seed, 'prompt_ids': PROMPT, 'base': base,
               'chat': {'messages': chat, 'text': rendered, 'ids': tok(rendered, add_special_tokens=False)['input_ids']},
               'adapters': {}}
    for name, targets, rslora, r, alpha in [('attn', attn_targets, False, 4, 8), ('all', 'all-linear', True, 8, 16)]:
        base_model = T.AutoModelForCausalLM.from_pretrained(dir, attn_implementation=ATTN.get(family, 'eager'),
                                                            dtype=torch.float32).eval()
        peft_model = get_peft_model(base_model, LoraConfig(r=r, lora_alpha=alpha, target_modules=targets,
                                                           use_rslora=rslora, lora_dropout=0.0))
        g = torch.Generator().manual_seed(100 + seed)
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if 'lora_' in n:  # PEFT zeroes lora_B: random B, or the adapter changes nothing
                    p.copy_(torch.randn(p.shape, generator=g) * 0.15)
        peft_model.eval()
        adir = os.path.join(dir, f'adapter-{name}')
        peft_model.save_pretrained(adir)
        for junk in ['README.md']:
            if os.path.exists(os.path.join(adir, junk)):
                os.remove(os.path.join(adir, junk))
        with open(os.path.join(adir, 'adapter_config.json')) as f:
            ac = json.load(f)
        ac['base_model_name_or_path'] = family  # not this machine's temp path
        with open(os.path.join(adir, 'adapter_config.json'), 'w') as f:
            json.dump(ac, f, indent=2, sort_keys=True)
        goldens['adapters'][name] = run(peft_model, PROMPT)
        goldens['adapters'][name]['target_modules'] = ac['target_modules']
    with open(os.path.join(dir, 'goldens.json'), 'w') as f:
        json.dump(goldens, f)
    print(family, 'seed', seed, 'base tokens', base['tokens'], 'margin', round(base['margin'], 4),
          {k: v['tokens'] for k, v in goldens['adapters'].items()})


if __name__ == '__main__':
    for fam in sys.argv[1:] or list(FAMILIES):
        make(fam)
