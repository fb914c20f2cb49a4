#!/usr/bin/env python3
"""Golden fixtures for LoRA training (test/unit/training-*.test.ts, docs/TRAINING.md).

Per fixture under test/fixtures/train/<name>/: a tiny random Llama, Qwen2 (q/k/v biases),
Mistral (sliding window shorter than the batch), Qwen3 (q/k norms), Gemma, Gemma 2, Gemma 3 text
Phi-3 (fused projections), GLM/GLM-4 (interleaved partial rotary), BLOOM or Falcon (LayerNorm,
ALiBi, parallel blocks, interleaved query_key_value) checkpoint (save_pretrained,
safetensors, fp32), a PEFT adapter with random non-zero lora_A/lora_B (PEFT zeroes B, which would
make B's gradient trivial and A's zero), a batch of token sequences of different lengths
(tokens.json), and from torch + peft with eager attention: the step-0 loss, the gradient of that
loss for every LoRA tensor under PEFT's saved names (grads.safetensors), and the losses (each
before its update) of a few plain-SGD and AdamW steps (goldens.json).

Loss: mean token cross-entropy over every predicted position of every sequence (position t
predicts t+1; right padding masked out of attention and loss).

Run once, outside CI (CI never installs PyTorch; the outputs are committed):
  /work/venv-ref/bin/python test/reference/make_train_goldens.py [NAME ...] && npx biome format --write test/fixtures/train
Tested with torch 2.x (CPU), transformers 5.x, peft 0.21.
"""
import json
import os
import shutil

import torch
import transformers as T
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'train')
VOCAB = 96
TOKENS = [[1, 17, 40, 5, 66, 23, 9], [1, 88, 12, 70], [1, 3, 55, 31, 42, 8, 90, 61, 27, 14]]
STEPS = 4

FIXTURES = {
    # untied head, GQA (4 query heads over 2 kv heads), attention-only LoRA
    'llama': (dict(num_key_value_heads=2, tie_word_embeddings=False),
              dict(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj'], use_rslora=False),
              dict(sgd_lr=0.5, adamw_lr=0.01, weight_decay=0.01)),
    # tied head, multi-query, every Linear adapted, rsLoRA scale
    'llama-tied': (dict(num_key_value_heads=1, tie_word_embeddings=True),
                   dict(r=4, lora_alpha=8, target_modules='all-linear', use_rslora=True),
                   dict(sgd_lr=0.02, adamw_lr=0.01, weight_decay=0.05)),
    # Qwen2: q/k/v biases (random, so they matter), GQA, untied head
    'qwen2': (dict(cls='Qwen2Config', num_key_value_heads=2, tie_word_embeddings=False),
              dict(r=4, lora_alpha=8, target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj'], use_rslora=False),
              dict(sgd_lr=0.5, adamw_lr=0.01, weight_decay=0.01)),
    # Mistral: a 4-token sliding window, shorter than the longest sequence (10), so it masks
    'mistral': (dict(cls='MistralConfig', num_key_value_heads=2, tie_word_embeddings=False, sliding_window=4),
                dict(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj', 'up_proj'], use_rslora=False),
                dict(sgd_lr=0.5, adamw_lr=0.01, weight_decay=0.01)),
    # Qwen3: per-head q/k RMSNorm before RoPE, explicit head_dim, GQA
    'qwen3': (dict(cls='Qwen3Config', num_key_value_heads=2, head_dim=16, tie_word_embeddings=False),
              dict(r=4, lora_alpha=8, target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj'], use_rslora=False),
              dict(sgd_lr=0.5, adamw_lr=0.01, weight_decay=0.01)),
    # Gemma: (1 + w) RMSNorm, GELU-tanh gate, embeddings scaled by sqrt(hidden), tied head, MQA
    'gemma': (dict(cls='GemmaConfig', num_key_value_heads=1, head_dim=16, hidden_activation='gelu_pytorch_tanh',
                   tie_word_embeddings=True),
              dict(r=4, lora_alpha=8, target_modules='all-linear', use_rslora=True),
              dict(sgd_lr=0.003, adamw_lr=0.002, weight_decay=0.01)),
    # Gemma 2: sandwich norms, attention and final soft-capping (caps small enough to bend the
    # tiny model's logits), query_pre_attn_scalar != head_dim, layer 0 sliding (window 4)
    'gemma2': (dict(cls='Gemma2Config', num_key_value_heads=2, head_dim=16, hidden_activation='gelu_pytorch_tanh',
                    query_pre_attn_scalar=24, attn_logit_softcapping=1.0, final_logit_softcapping=2.0,
                    sliding_window=4, tie_word_embeddings=True),
               dict(r=4, lora_alpha=8, target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj'],
                    use_rslora=False),
               dict(sgd_lr=0.2, adamw_lr=0.01, weight_decay=0.01)),
    # Gemma 3 (text): Gemma 2's layer with (1 + w) q/k norms, a sliding layer (window 4, local
    # RoPE base 10k) then a global one (base 1M), no soft-capping
    'gemma3': (dict(cls='Gemma3TextConfig', num_key_value_heads=2, head_dim=16,
                    hidden_activation='gelu_pytorch_tanh', query_pre_attn_scalar=20, sliding_window=4,
                    layer_types=['sliding_attention', 'full_attention'], tie_word_embeddings=True, rope_theta=None),
               dict(r=4, lora_alpha=8, target_modules='all-linear', use_rslora=True),
               dict(sgd_lr=0.05, adamw_lr=0.01, weight_decay=0.01)),
    # Phi-3: fused qkv_proj and gate_up_proj adapted as PEFT names them (one A per fused module,
    # B over all its rows), partial rotary (half of each head, Phi-4-mini style), GQA
    'phi3': (dict(cls='Phi3Config', num_key_value_heads=2, partial_rotary_factor=0.5, tie_word_embeddings=False),
             dict(r=4, lora_alpha=8, target_modules=['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'],
                  use_rslora=False),
             dict(sgd_lr=0.2, adamw_lr=0.01, weight_decay=0.01)),
    # GLM: half of each head rotates, in interleaved pairs (2i, 2i+1); q/k/v biases; fused gate_up_proj
    'glm': (dict(cls='GlmConfig', num_key_value_heads=2, head_dim=16, partial_rotary_factor=0.5,
                 attention_bias=True, tie_word_embeddings=False),
            dict(r=4, lora_alpha=8, target_modules=['q_proj', 'k_proj', 'gate_up_proj'], use_rslora=False),
            dict(sgd_lr=0.5, adamw_lr=0.01, weight_decay=0.01)),
    # GLM-4: GLM plus sandwich norms (post_self_attn_layernorm, post_mlp_layernorm)
    'glm4': (dict(cls='Glm4Config', num_key_value_heads=2, head_dim=16, partial_rotary_factor=0.5,
                  attention_bias=True, tie_word_embeddings=False),
             dict(r=4, lora_alpha=8, target_modules='all-linear', use_rslora=True),
             dict(sgd_lr=0.05, adamw_lr=0.005, weight_decay=0.01)),
    # BLOOM (plain: not the Llama keys): ALiBi, LayerNorm with bias (one after the embedding),
    # query_key_value interleaved per head, plain GELU-tanh MLP, biases everywhere, tied head
    'bloom': (dict(cls='BloomConfig', plain=True, n_layer=2, n_head=4),
              dict(r=4, lora_alpha=8, target_modules='all-linear', use_rslora=False),
              dict(sgd_lr=0.05, adamw_lr=0.005, weight_decay=0.01)),
    # Falcon 40B/180B layout: grouped K/V (query_key_value interleaved per K/V group), attention
    # and MLP in parallel from two LayerNorms (ln_attn, ln_mlp), exact GELU MLP
    'falcon': (dict(cls='FalconConfig', plain=True, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2,
                    new_decoder_architecture=True, ffn_hidden_size=96, max_position_embeddings=64),
               dict(r=4, lora_alpha=8, target_modules='all-linear', use_rslora=False),
               dict(sgd_lr=0.1, adamw_lr=0.005, weight_decay=0.01)),
    # Falcon-7B layout: multi-query ([q | k | v] rows), parallel attention + MLP from one LayerNorm
    'falcon-7b': (dict(cls='FalconConfig', plain=True, num_hidden_layers=2, num_attention_heads=4,
                       multi_query=True, new_decoder_architecture=False, parallel_attn=True, ffn_hidden_size=96,
                       max_position_embeddings=64),
                  dict(r=4, lora_alpha=8, target_modules=['query_key_value', 'dense_h_to_4h'], use_rslora=False),
                  dict(sgd_lr=0.1, adamw_lr=0.005, weight_decay=0.01)),
    # Falcon-RW: ALiBi (slopes and biases rounded to bfloat16, added before the scale), attention
    # then MLP, query_key_value interleaved per head, biases on every Linear. sdpa: transformers'
    # eager Falcon path adds ALiBi twice (once itself, once folded into the causal mask)
    'falcon-rw': (dict(cls='FalconConfig', plain=True, attn='sdpa', num_hidden_layers=2, num_attention_heads=4, alibi=True,
                       multi_query=False, new_decoder_architecture=False, parallel_attn=False, bias=True,
                       ffn_hidden_size=96, max_position_embeddings=64),
                  dict(r=4, lora_alpha=8, target_modules=['query_key_value', 'dense', 'dense_4h_to_h'],
                       use_rslora=False),
                  dict(sgd_lr=0.1, adamw_lr=0.005, weight_decay=0.01)),
}


def batch():
    n = max(len(s) for s in TOKENS)
    ids = torch.tensor([s + [0] * (n - len(s)) for s in TOKENS])
    mask = torch.tensor([[1] * len(s) + [0] * (n - len(s)) for s in TOKENS])
    return ids, mask


def loss_of(model):
    ids, mask = batch()
    logits = model(input_ids=ids, attention_mask=mask).logits
    pred = logits[:, :-1].reshape(-1, logits.shape[-1])
    tgt = ids[:, 1:].reshape(-1)
    valid = (mask[:, 1:] * mask[:, :-1]).reshape(-1).bool()
    return torch.nn.functional.cross_entropy(pred[valid], tgt[valid], reduction='mean')


def saved_name(n):
    return n.replace('.default.', '.')  # PEFT drops the adapter name when saving


def peft_model_for(dir, lcfg, adir=None, attn='eager'):
    from peft import PeftModel
    base = T.AutoModelForCausalLM.from_pretrained(dir, attn_implementation=attn, dtype=torch.float32)
    if adir:
        return PeftModel.from_pretrained(base, adir, is_trainable=True)
    return get_peft_model(base, LoraConfig(**lcfg, lora_dropout=0.0))


def make(name):
    mkw, lcfg, hp = FIXTURES[name]
    dir = os.path.join(OUT, name)
    shutil.rmtree(dir, ignore_errors=True)
    os.makedirs(dir)
    torch.manual_seed(7)
    mkw = dict(mkw)
    attn = mkw.pop('attn', 'eager')
    cls = getattr(T, mkw.pop('cls', 'LlamaConfig'))
    kw = dict(vocab_size=VOCAB, hidden_size=64, initializer_range=0.1, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if not mkw.pop('plain', False):  # the Llama-style keys (BLOOM and Falcon name theirs differently)
        kw.update(intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64,
                  rms_norm_eps=1e-6, rope_theta=10000.0)
    kw.update(mkw)
    cfg = cls(**{k: v for k, v in kw.items() if v is not None})  # None: the family's own default
    model = T.AutoModelForCausalLM.from_config(cfg, attn_implementation=attn, dtype=torch.float32)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1:  # norms (and biases): random, not ones or zeros
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    model.save_pretrained(dir, safe_serialization=True)

    pm = peft_model_for(dir, lcfg, attn=attn)
    g = torch.Generator().manual_seed(12)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if 'lora_' in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    adir = os.path.join(dir, 'adapter')
    pm.save_pretrained(adir)
    if os.path.exists(os.path.join(adir, 'README.md')):
        os.remove(os.path.join(adir, 'README.md'))
    with open(os.path.join(adir, 'adapter_config.json')) as f:
        ac = json.load(f)
    ac['base_model_name_or_path'] = name
    if isinstance(ac['target_modules'], list):  # a set in PEFT: its order varies per run
        ac['target_modules'] = sorted(ac['target_modules'])
    with open(os.path.join(adir, 'adapter_config.json'), 'w') as f:
        json.dump(ac, f, indent=2, sort_keys=True)

    pm = peft_model_for(dir, lcfg, adir, attn)
    loss = loss_of(pm)
    loss.backward()
    grads = {saved_name(n): p.grad.detach().clone().contiguous() for n, p in pm.named_parameters() if p.requires_grad}
    save_file(grads, os.path.join(dir, 'grads.safetensors'))

    runs = {}
    for opt in ['sgd', 'adamw']:
        pm = peft_model_for(dir, lcfg, adir, attn)
        params = [p for p in pm.parameters() if p.requires_grad]
        o = (torch.optim.SGD(params, lr=hp['sgd_lr']) if opt == 'sgd'
             else torch.optim.AdamW(params, lr=hp['adamw_lr'], weight_decay=hp['weight_decay']))
        losses = []
        for _ in range(STEPS):
            o.zero_grad()
            l = loss_of(pm)
            losses.append(float(l))
            l.backward()
            o.step()
        runs[opt] = losses
    with open(os.path.join(dir, 'tokens.json'), 'w') as f:
        json.dump(TOKENS, f)
    with open(os.path.join(dir, 'goldens.json'), 'w') as f:
        json.dump({'loss': float(loss), 'steps': STEPS, 'hyper': hp, 'losses': runs,
                   'lora': {k: v if not isinstance(v, set) else sorted(v) for k, v in lcfg.items()}}, f, indent=1)
    print(name, 'loss', float(loss), runs, 'tensors', len(grads))


if __name__ == '__main__':
    import sys
    for n in sys.argv[1:] or FIXTURES:
        make(n)
