"""Writes the checkpoints of this folder with the dslm code of commit 4d398b7 (before
vocabulary padding and the fused kernels), and the logits that code computed:

    git worktree add /tmp/old 4d398b7 && PYTHONPATH=/tmp/old/src python tests/data/old_checkpoints/make.py

tests/test_fused.py loads them with today's code and checks the logits match.
"""

from pathlib import Path

import torch
from safetensors.torch import save_file

from dslm.models import build_model
from dslm.models.checkpoint import save
from dslm.models.config import ModelConfig

HERE = Path(__file__).parent

for kind in ("dsl", "mdlm", "ar"):
    torch.manual_seed(0)
    cfg = ModelConfig(kind=kind, vocab_size=67, seq_len=16, hidden_size=16, n_blocks=1,
                      n_heads=2, cond_dim=8, embed_dim=8, time_conditioning=kind == "mdlm")
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 67, (2, 16), generator=gen)
    with torch.no_grad():
        if kind == "dsl":
            inp = (torch.randn(2, 16, 8, generator=gen) * 3,)
        elif kind == "mdlm":
            inp = (torch.where(torch.rand(2, 16, generator=gen) < 0.5, 67, x), torch.tensor([0.3, 1.2]))
        else:
            inp = (x,)
        out = model(*inp)
    save(model, HERE / kind)
    save_file({f"input{i}": t.contiguous() for i, t in enumerate(inp)} | {"output": out.contiguous()},
              str(HERE / f"{kind}-io.safetensors"))
    print(kind, tuple(out.shape))
