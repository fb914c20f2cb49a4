#!/usr/bin/env python3
"""Which 4-bit weight formats could read fewer bytes than ours at llama.cpp Q4_0's error (issue 17).

A batch-1 decode step reads every weight once, so once both engines stream at the host's read
rate the 1B int4 line (ours ÷ Q4_0, goal ≥ 1.1) is the formats' bytes ratio. This study asks how
far the bytes can fall while the int4 error line (KL vs fp32 ≤ Q4_0's) holds: it fake-quantizes
the bench's 135M fixture (every projection and the tied lm_head; int8 activations per 32, as
both engines' dot products use) in each candidate format, runs a plain NumPy forward pass and
reports KL(fp32 ‖ format) ÷ Q4_0's over every position of random prompts, with each format's
bits a weight and the decode ratio its bytes allow at equal bandwidth (4.5 ÷ bits).

Formats: q4_0 (llama.cpp's reference rounding), asym32sb (ours: graph/quantize4.ts, zero point
and 6-bit scale q·d in superblocks of 8 blocks; its range search approximated), asym64sb (the
same in blocks of 64), nl64sb / nl128sb (IQ4_NL's 16 non-uniform int8 levels, a signed 6-bit
scale per block and an fp16 unit per 8 blocks; IQ4_NL-style scale search with one least-squares
refinement). Only NumPy is needed. The fixture is the one `npm run bench:vs-llamacpp` builds.
A study, not a benchmark: nothing is timed; ~15 minutes on 2 cores, most of it the non-uniform
formats' scale search. Findings: docs/BENCH-LLAMACPP.md "Wave 17".

    python3 scripts/studies/int4-formats.py [--model DIR] [--prompts 8] [--formats a,b] [--json]
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument('--model', default='/tmp/openlora-bench-vs-llamacpp-v1/model')
ap.add_argument('--prompts', type=int, default=8)
ap.add_argument('--formats', default='q4_0,asym32sb,asym64sb,nl64sb,nl128sb')
ap.add_argument('--json', action='store_true')
args = ap.parse_args()

try:
    cfg = json.load(open(f'{args.model}/config.json'))
    st = open(f'{args.model}/model.safetensors', 'rb')
except OSError as e:
    sys.exit(f'{e}: pass --model DIR, a Llama checkpoint (run `npm run bench:vs-llamacpp` once to build its 135M fixture)')
n = struct.unpack('<Q', st.read(8))[0]
hdr = json.loads(st.read(n))
base = 8 + n
raw = np.memmap(f'{args.model}/model.safetensors', dtype=np.uint8, mode='r')


def tensor(name):
    h = hdr[name]
    a, b = h['data_offsets']
    data = raw[base + a:base + b]
    if h['dtype'] == 'BF16':
        v = (np.frombuffer(data.tobytes(), np.uint16).astype(np.uint32) << 16).view(np.float32)
    elif h['dtype'] == 'F32':
        v = np.frombuffer(data.tobytes(), np.float32)
    else:
        sys.exit(f'{name}: dtype {h["dtype"]} not handled (BF16, F32)')
    return v.reshape(h['shape']).astype(np.float64)


def f16(x):
    return x.astype(np.float16).astype(np.float64)


def q4_0(W):
    X = W.reshape(-1, 32)
    m = X[np.arange(len(X)), np.argmax(np.abs(X), 1)]
    d = f16(m / -8)
    inv = np.where(d != 0, 1 / np.where(d == 0, 1, d), 0)
    return ((np.clip(np.floor(X * inv[:, None] + 8.5), 0, 15) - 8) * d[:, None]).reshape(W.shape)


def superblock(s, rows, sb=8, signed=False):
    """Scales as q · D, q an integer of 6 bits (plus a sign), D one fp16 unit per sb blocks of a row."""
    S = s.reshape(rows, -1)
    out = np.empty_like(S)
    for j in range(0, S.shape[1], sb):
        part = S[:, j:j + sb]
        D = f16(np.abs(part).max(1) / 63)
        D = np.where(D == 0, 1e-30, D)
        q = np.round(part / D[:, None])
        out[:, j:j + sb] = (q if signed else np.clip(q, 0, 63)) * D[:, None]
    return out.ravel()


def asym(W, B):
    """Zero point and scale per block over the best of a few ranges [min, max] × f, then the scales in superblocks."""
    X = W.reshape(-1, B)
    mn, mx = np.minimum(X.min(1), 0), np.maximum(X.max(1), 0)
    best_e = np.full(len(X), np.inf)
    best_s, best_lo = np.zeros(len(X)), np.zeros(len(X))
    for f in (1, .96, .92, .88, .84):
        s = np.where(mx > mn, (mx - mn) * f / 15, 1e-30)
        for lo in (mn, mx - (mx - mn) * f):
            zp = np.clip(np.round(-lo / s), 0, 15)
            e = (((np.clip(np.round(X / s[:, None] + zp[:, None]), 0, 15) - zp[:, None]) * s[:, None] - X) ** 2).sum(1)
            m = e < best_e
            best_e[m], best_s[m], best_lo[m] = e[m], s[m], lo[m]
    s = superblock(best_s, W.shape[0])
    s = np.where(s == 0, 1e-30, s)
    zp = np.clip(np.round(-best_lo / s), 0, 15)
    return ((np.clip(np.round(X / s[:, None] + zp[:, None]), 0, 15) - zp[:, None]) * s[:, None]).reshape(W.shape)


IQ4NL = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.float64)
MID = (IQ4NL[1:] + IQ4NL[:-1]) / 2


def levels(X, d):
    return IQ4NL[np.searchsorted(MID, X / np.where(d == 0, 1e-30, d)[:, None])]


def nl(W, B):
    X = W.reshape(-1, B)
    m = X[np.arange(len(X)), np.argmax(np.abs(X), 1)]
    best_e, best_d = np.full(len(X), np.inf), np.zeros(len(X))
    for t in range(-7, 8):
        for d in (m / (IQ4NL[0] + t), m / (IQ4NL[-1] + t)):
            C = levels(X, d)
            den = (C * C).sum(1)
            d = np.where(den > 0, (C * X).sum(1) / np.where(den == 0, 1, den), 0)
            e = ((levels(X, d) * d[:, None] - X) ** 2).sum(1)
            mk = e < best_e
            best_e[mk], best_d[mk] = e[mk], d[mk]
    d = superblock(best_d, W.shape[0], signed=True)
    return (levels(X, d) * d[:, None]).reshape(W.shape)


def rowwise(quantize, B):
    """quantize(W, B) on rows padded with zeros to whole blocks (576 = 4.5 blocks of 128), cropped back."""
    def run(W):
        K = W.shape[1]
        pad = -K % B
        Wp = np.pad(W, ((0, 0), (0, pad))) if pad else W
        return quantize(Wp, B)[:, :K]
    return run


# bits a weight where K is whole blocks (every width of the 1B shape)
FORMATS = {
    'q4_0': (q4_0, 4.5),
    'asym32sb': (rowwise(asym, 32), 17.5 * 8 / 32),
    'asym64sb': (rowwise(asym, 64), (256 + 10 + 16 / 8) / 64),
    'nl64sb': (rowwise(nl, 64), (256 + 7 + 16 / 8) / 64),
    'nl128sb': (rowwise(nl, 128), (512 + 7 + 16 / 8) / 128),
}

L, H = cfg['num_hidden_layers'], cfg['hidden_size']
nh, nkv = cfg['num_attention_heads'], cfg['num_key_value_heads']
hd, eps, theta = H // nh, cfg['rms_norm_eps'], cfg.get('rope_theta', 10000)
PROJ = [('self_attn', p) for p in ('q_proj', 'k_proj', 'v_proj', 'o_proj')] + [('mlp', p) for p in ('gate_proj', 'up_proj', 'down_proj')]
norm = {(l, k): tensor(f'model.layers.{l}.{k}_layernorm.weight').astype(np.float32) for l in range(L) for k in ('input', 'post_attention')}
final_norm = tensor('model.norm.weight').astype(np.float32)
emb = tensor('model.embed_tokens.weight')
head_name = 'model.embed_tokens.weight' if 'lm_head.weight' not in hdr else 'lm_head.weight'


def weights(fmt):
    q = FORMATS[fmt][0] if fmt else (lambda W: W)
    w = {(l, p): q(tensor(f'model.layers.{l}.{g}.{p}.weight')).astype(np.float32) for l in range(L) for g, p in PROJ}
    w['head'] = q(tensor(head_name)).astype(np.float32)
    return w


def act8(x):  # int8 per 32 along K, as Q8_0 and our int4 dot products quantize activations
    X = x.reshape(x.shape[0], -1, 32)
    s = np.abs(X).max(2, keepdims=True) / 127
    s = np.where(s == 0, 1, s)
    return (np.round(X / s) * s).reshape(x.shape).astype(np.float32)


def forward(w, toks, quant_act):
    lin = (lambda x, W: act8(x) @ W.T) if quant_act else (lambda x, W: x @ W.T)
    rms = lambda x, g: x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g
    T = len(toks)
    inv = theta ** (-np.arange(0, hd, 2) / hd)
    ang = np.arange(T)[:, None] * inv[None, :]
    cos, sin = np.cos(ang).astype(np.float32)[:, None], np.sin(ang).astype(np.float32)[:, None]
    rope = lambda x: np.concatenate([x[..., :hd // 2] * cos - x[..., hd // 2:] * sin, x[..., hd // 2:] * cos + x[..., :hd // 2] * sin], -1)
    mask = np.triu(np.full((T, T), -np.inf, np.float32), 1)
    x = emb[toks].astype(np.float32)
    for l in range(L):
        h = rms(x, norm[(l, 'input')])
        q = rope(lin(h, w[(l, 'q_proj')]).reshape(T, nh, hd))
        k = np.repeat(rope(lin(h, w[(l, 'k_proj')]).reshape(T, nkv, hd)), nh // nkv, 1)
        v = np.repeat(lin(h, w[(l, 'v_proj')]).reshape(T, nkv, hd), nh // nkv, 1)
        a = np.einsum('thd,shd->hts', q, k) / np.sqrt(hd) + mask
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        x = x + lin(np.einsum('hts,shd->thd', a, v).reshape(T, H), w[(l, 'o_proj')])
        h = rms(x, norm[(l, 'post_attention')])
        g, u = lin(h, w[(l, 'gate_proj')]), lin(h, w[(l, 'up_proj')])
        x = x + lin(g / (1 + np.exp(-g)) * u, w[(l, 'down_proj')])
    z = lin(rms(x, final_norm), w['head']).astype(np.float64)
    z -= z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


for fmt in args.formats.split(','):
    if fmt not in FORMATS:
        sys.exit(f'format {fmt!r} unknown; allowed: {", ".join(FORMATS)}')
rng = np.random.default_rng(1)
prompts = [rng.integers(3, cfg['vocab_size'], 32) for _ in range(args.prompts)]
ref_w = weights(None)
refs = [forward(ref_w, p, False) for p in prompts]
del ref_w
out = {}
for fmt in args.formats.split(','):
    t0 = time.time()
    w = weights(fmt)
    kl = np.mean([(np.exp(r) * (r - forward(w, p, True))).sum(-1).mean() for p, r in zip(prompts, refs)])
    out[fmt] = {'bitsPerWeight': round(FORMATS[fmt][1], 4), 'kl': float(kl), 'seconds': round(time.time() - t0)}
    if not args.json:
        print(f'{fmt:9s} {FORMATS[fmt][1]:.3f} bits  KL {kl:.5f}  ({out[fmt]["seconds"]} s)', file=sys.stderr, flush=True)
if 'q4_0' in out:
    for v in out.values():
        v['klVsQ4_0'] = round(v['kl'] / out['q4_0']['kl'], 3)
        v['decodeRatioAtEqualBandwidth'] = round(4.5 / v['bitsPerWeight'], 3)
cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), 'unknown')
report = {
    'bench': 'int4-formats',
    'machine': {'cpu': cpu, 'cores': os.cpu_count(), 'numpy': np.__version__, 'gpu': None},
    'config': {'model': args.model, 'prompts': args.prompts, 'tokensPerPrompt': 32, 'activations': 'int8 per 32',
               'quantized': 'every projection and the tied lm_head'},
    'results': {'formats': out},
    # a study, not one of the goal lines (bench:vs-llamacpp measures those)
    'goals': [],
}
if args.json:
    print(json.dumps(report))
else:
    print('format     bits/w  KL÷Q4_0  decode ratio at equal bandwidth (4.5 ÷ bits)')
    for k, v in out.items():
        print(f'{k:10s} {v["bitsPerWeight"]:.3f}  {v.get("klVsQ4_0", float("nan")):.3f}    {v.get("decodeRatioAtEqualBandwidth", float("nan")):.3f}')
