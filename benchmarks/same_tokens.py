"""Tokens of every sampler (top-p 1 and 0.9) on tiny random models, saved to argv[1]: run it
with two source trees on PYTHONPATH and compare the files (torch.equal) to check that a
change keeps the same tokens for the same seed."""
import sys, torch
torch.set_num_threads(1)
from dslm.models import build_model
from dslm.models.config import ModelConfig
from dslm.sampling import SAMPLERS, sample
out = {}
for kind in ("dsl", "mdlm", "ar"):
    torch.manual_seed(0)
    m = build_model(ModelConfig(kind=kind, vocab_size=130, seq_len=24, hidden_size=32, n_blocks=2, n_heads=2, cond_dim=16, embed_dim=8)).eval()
    with torch.no_grad():
        for p in m.parameters(): p.add_(0.5 * torch.randn_like(p))
    for name, spec in SAMPLERS.items():
        if kind != spec.kinds[0]: continue
        for top_p in (1.0, 0.9):
            r = sample(m, name, 6, 24, 8, torch.Generator().manual_seed(3), top_p=top_p)
            out[f"{name}/{top_p}"] = r.tokens
torch.save(out, sys.argv[1])
