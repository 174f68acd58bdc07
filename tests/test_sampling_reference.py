"""Fixed-seed tokens of every sampler against a saved reference (CPU, float32).

Speed work on the samplers (fewer host syncs, cheaper nucleus and inverse-CDF draws)
must not change what they draw: the reference in ``tests/data/sampler_reference.json``
was written by the samplers before that work. Regenerate (only for an intended change
of the random stream) with ``PYTHONPATH=src python tests/test_sampling_reference.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import random_model
from dslm.sampling import SAMPLERS, sample

REFERENCE = Path(__file__).parent / "data" / "sampler_reference.json"
VOCAB, LENGTH, STEPS, N = 70, 16, 8, 4
CASES = [(name, {}) for name in SAMPLERS] + [
    ("mdlm", {"top_p": 0.7, "temperature": 0.8}),
    ("mdlm", {"final_step": "argmax"}),
    ("dsl-mdlm", {"top_p": 0.9, "carry_over": False}),
    ("remdm-conf", {"top_p": 1.0}),
    ("dsl-remdm-loop", {"renoise_snr": 1.0, "carry_over": False}),
    ("dsl-continuous", {"top_p": 0.8}),
    ("dsl-continuous", {"drift": "mean", "decode": "argmax"}),
    ("hybrid", {"eta": 0.1, "top_p": 0.9, "commit_threshold": 0.05}),
]


def _key(name: str, options: dict) -> str:
    return name + "".join(f" {k}={v}" for k, v in sorted(options.items()))


def draw_all() -> dict[str, list]:
    models = {kind: random_model(kind, VOCAB) for kind in ("dsl", "mdlm", "ar")}
    out = {}
    for name, options in CASES:
        model = models[SAMPLERS[name].kinds[0]]
        res = sample(model, name, N, LENGTH, STEPS, torch.Generator().manual_seed(7), **options)
        out[_key(name, options)] = res.tokens.tolist()
    return out


@pytest.fixture(scope="module")
def drawn():
    torch.set_num_threads(1)
    return draw_all()


@pytest.mark.parametrize("name,options", CASES, ids=[_key(n, o) for n, o in CASES])
def test_fixed_seed_tokens_match_the_reference(drawn, name, options):
    reference = json.loads(REFERENCE.read_text())
    assert drawn[_key(name, options)] == reference[_key(name, options)]


def test_two_level_inverse_cdf_matches_the_dense_search():
    """``common._invert_cdf`` (block sums, then one block) draws what the dense rule
    ``searchsorted(cumsum(p), u F(V))`` draws, on rows with zeros (as after a nucleus cut),
    rows shorter and longer than a block, a u at the top of [0, 1), and never a p = 0 token."""
    from dslm.sampling.common import _invert_cdf

    def dense(p, u):
        cdf = p.double().cumsum(dim=-1)
        ids = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(-1)
        last = torch.where(p > 0, torch.arange(p.shape[-1]), 0).amax(dim=-1)
        return torch.minimum(ids, last)

    g = torch.Generator().manual_seed(0)
    for v in (5, 256, 257, 3000):
        for dtype in (torch.float32, torch.float64):
            p = torch.softmax(3 * torch.randn(400, v, generator=g, dtype=torch.float64), -1)
            p = (p * (torch.rand(400, v, generator=g) > 0.3)).to(dtype)
            p[0] = 0
            p[0, 0] = 1.0
            p[1] = 0
            p[1, v - 1] = 0.5
            p[3] = 0
            p[3, :2] = 0.5
            u = torch.rand(400, 1, generator=g, dtype=torch.float64)
            u[2] = 1 - 2 ** -53
            ids = _invert_cdf(p, u)
            assert torch.equal(ids, dense(p, u))
            nonzero_rows = p.sum(-1) > 0
            assert bool((p.gather(1, ids[:, None]).squeeze(1)[nonzero_rows] > 0).all())


def test_nucleus_mask_equals_the_sorted_scatter_with_ties():
    """``common.nucleus`` (threshold mask in the original order, optional 32-bit sort keys)
    gives exactly the stable-sort-and-scatter nucleus, on rows full of ties (bf16 logits)."""
    from dslm.sampling.common import nucleus

    def scatter_nucleus(probs, top_p):
        top, idx = probs.sort(dim=-1, descending=True, stable=True)
        keep = top.cumsum(dim=-1) <= top_p
        keep[:, 0] = True
        kept = torch.zeros_like(probs).scatter_(-1, idx, top * keep)
        return kept / kept.sum(dim=-1, keepdim=True)

    g = torch.Generator().manual_seed(0)
    for v in (3, 50, 1000):
        scores = (3 * torch.randn(100, v, generator=g)).to(torch.bfloat16).float()
        scores[:4] = 0.0                                          # rows of equal scores
        probs = torch.softmax(scores.double(), dim=-1)
        for top_p in (0.1, 0.5, 0.9, 0.99):
            want = scatter_nucleus(probs, top_p)
            assert torch.equal(nucleus(probs, top_p), want)
            assert torch.equal(nucleus(probs, top_p, keys=scores), want)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    torch.set_num_threads(1)
    REFERENCE.write_text(json.dumps(draw_all(), indent=0) + "\n")
    print(f"wrote {REFERENCE}")
