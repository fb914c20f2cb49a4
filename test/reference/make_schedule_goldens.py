"""lr factors of transformers' schedulers (warmup 3, 10 steps) for test/unit/training-options.test.ts.

Run with the reference venv: /work/venv-ref/bin/python test/reference/make_schedule_goldens.py
"""
import json
import os

import torch
import transformers
from transformers import get_scheduler

out = {"transformers": transformers.__version__, "warmup": 3, "steps": 10, "factors": {}}
for ours, theirs in [("constant", "constant_with_warmup"), ("linear", "linear"), ("cosine", "cosine")]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = get_scheduler(theirs, opt, num_warmup_steps=3, num_training_steps=10)
    factors = []
    for _ in range(10):
        factors.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    out["factors"][ours] = factors
path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "train", "schedules.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
