"""Exactness of the padded / fused kernels against the plain implementation."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from conftest import tiny_model_config
from dslm.diffusion.losses import ar_loss, dsl_loss, mdlm_loss
from dslm.diffusion.schedules import ScheduleConfig
from dslm.models import build_model, fused
from dslm.models.checkpoint import open_checkpoint, save

OLD = Path(__file__).parent / "data" / "old_checkpoints"


def test_padded_size_and_linear(gen):
    assert [fused.padded_size(n) for n in (1, 64, 65, 50257, 50258)] == [64, 64, 128, 50304, 50304]
    x = torch.randn(3, 5, 16, generator=gen, dtype=torch.float64)
    w = torch.randn(67, 16, generator=gen, dtype=torch.float64)
    b = torch.randn(67, generator=gen, dtype=torch.float64)
    out = fused.padded_linear(x, w, b)
    assert out.shape == (3, 5, 67)
    torch.testing.assert_close(out, F.linear(x, w, b), rtol=0, atol=1e-12)


@pytest.mark.parametrize("classes, bias", [(67, True), (66, True), (67, False)])
def test_linear_cross_entropy_gradcheck(gen, classes, bias):
    h = torch.randn(7, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(67, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(67, generator=gen, dtype=torch.float64, requires_grad=True) if bias else None
    t = torch.randint(0, classes, (7,), generator=gen)
    tw = torch.rand(7, generator=gen, dtype=torch.float64)
    tw[2] = 0.0

    def total(h, w, b):
        return fused.linear_cross_entropy(h, w, b, t, tw, classes)[0]

    # the fused CE sums in float32 (as the plain loss under .float()), so compare in float64
    # through a float64 compute: h, W, b stay float64 and the chunk math is float32 only in ce
    with torch.no_grad():
        ref = F.cross_entropy(F.linear(h, w, b)[:, :classes], t, reduction="none")
        ce = fused.linear_cross_entropy(h, w, b, t, tw, classes)[1]
    torch.testing.assert_close(ce.double(), ref, rtol=1e-6, atol=1e-6)
    args = (h, w, b) if bias else (h, w)
    plain = lambda *a: (F.cross_entropy(F.linear(a[0], a[1], a[2] if bias else None)[:, :classes], t,  # noqa: E731
                                        reduction="none") * tw).sum()
    got = torch.autograd.grad(total(h, w, b), args)
    want = torch.autograd.grad(plain(*args), args)
    for g1, g2 in zip(got, want):
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)


def test_linear_cross_entropy_chunks_and_no_grad(gen, monkeypatch):
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 128 * 3)       # 3 rows per chunk
    h = torch.randn(2, 5, 6, generator=gen, requires_grad=True)
    w = torch.randn(70, 6, generator=gen, requires_grad=True)
    t = torch.randint(0, 70, (2, 5), generator=gen)
    tw = torch.rand(2, 5, generator=gen)
    total, ce = fused.linear_cross_entropy(h, w, None, t, tw)
    plain = F.cross_entropy(F.linear(h, w).flatten(0, 1), t.flatten(), reduction="none").view(2, 5)
    torch.testing.assert_close(ce, plain.detach())
    torch.testing.assert_close(torch.autograd.grad(total, (h, w)),
                               torch.autograd.grad((plain * tw).sum(), (h, w)))
    with torch.no_grad():
        total2, ce2 = fused.linear_cross_entropy(h, w, None, t, tw)
    torch.testing.assert_close(total2, total.detach())


def test_soft_embedding_gradcheck(gen, monkeypatch):
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 128 * 2)         # 2 rows per chunk, 66 -> 128 slots
    y = torch.randn(5, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(66, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(66, generator=gen, dtype=torch.float64, requires_grad=True)
    w_in = torch.randn(66, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fused.soft_embedding, (y, keys, bias, w_in), fast_mode=True)
    plain = torch.softmax(y @ keys.t() + bias, -1) @ w_in
    torch.testing.assert_close(fused.soft_embedding(y, keys, bias, w_in), plain)


def test_gelu_linear_gradcheck(gen):
    u = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fused.gelu_linear, (u, w, b))
    torch.testing.assert_close(fused.gelu_linear(u, w, b), F.linear(F.gelu(u, approximate="tanh"), w, b))


class _Plain(torch.nn.Module):
    """The model without the fused head: losses take the plain F.cross_entropy path."""

    fused_head = False

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *args):
        return self.model(*args)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)


@pytest.mark.parametrize("kind", ["dsl", "mdlm", "ar"])
def test_losses_and_grads_match_plain_path(kind):
    """Padded head + fused CE = the plain logits path (float32: the backbone is float32-only)."""
    torch.manual_seed(0)
    model = build_model(tiny_model_config(kind, vocab_size=70))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x0 = torch.randint(0, 70, (3, 16))

    def run(m):
        gen = torch.Generator().manual_seed(5)
        out = (dsl_loss(m, x0, ScheduleConfig(), gen) if kind == "dsl" else
               mdlm_loss(m, x0, gen) if kind == "mdlm" else ar_loss(m, x0, gen))
        grads = torch.autograd.grad(out.loss, [p for p in model.parameters() if p.requires_grad])
        return out, grads

    fast, g_fast = run(model)
    ref, g_ref = run(_Plain(model))
    for a, b in ((fast.loss, ref.loss), (fast.nll, ref.nll), (fast.terms, ref.terms)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_fused_path_under_bf16_autocast_matches_plain():
    """Under bf16 autocast the fused losses agree with the plain path to bf16 tolerance."""
    torch.manual_seed(0)
    model = build_model(tiny_model_config("dsl", vocab_size=70))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x0 = torch.randint(0, 70, (3, 16))
    outs = []
    for m in (model, _Plain(model)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = dsl_loss(m, x0, ScheduleConfig(), torch.Generator().manual_seed(5))
        grads = torch.autograd.grad(out.loss, list(model.parameters()))
        outs.append((out.loss, grads))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=2e-2, atol=2e-2)
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b, rtol=5e-2, atol=5e-2 * float(b.abs().max()) + 1e-6)


@pytest.mark.parametrize("kind", ["dsl", "mdlm", "ar"])
def test_old_checkpoints_load_and_give_the_same_logits(kind, tmp_path):
    """Checkpoints written before padding (commit 4d398b7, see make.py) load unchanged;
    saving again keeps the true vocabulary size on disk."""
    model = open_checkpoint(OLD / kind).model
    io = load_file(str(OLD / f"{kind}-io.safetensors"))
    inputs = [io[k] for k in sorted(k for k in io if k.startswith("input"))]
    with torch.no_grad():
        out = model(*inputs)
    torch.testing.assert_close(out, io["output"], rtol=1e-5, atol=1e-5)
    save(model, tmp_path / "again")
    old = load_file(str(OLD / kind / "model.safetensors"))
    new = load_file(str(tmp_path / "again" / "model.safetensors"))
    assert {k: tuple(v.shape) for k, v in new.items()} == {k: tuple(v.shape) for k, v in old.items()}


@pytest.mark.parametrize("kind", ["dsl", "mdlm", "ar"])
def test_padded_model_outputs_equal_unpadded(kind, gen):
    """The padded head and the fused converter give the plain unpadded model's outputs."""
    torch.manual_seed(0)
    model = build_model(tiny_model_config(kind, vocab_size=70)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    bb, head = model.backbone, model.backbone.output_layer.linear
    x = torch.randint(0, 70, (2, 16), generator=gen)
    with torch.no_grad():
        if kind == "dsl":
            y = 5 * torch.randn(2, 16, 8, generator=gen)
            h_plain = torch.softmax(model.input_scores(y), -1) @ bb.vocab_embed.embedding
            torch.testing.assert_close(model.input_embedding(y), h_plain)
            out, feats = model(y), bb.features(h_plain)
        elif kind == "mdlm":
            out, feats = model.logits(x), bb.features(bb.vocab_embed(x))
        else:
            out, feats = model(x), bb.features(bb.vocab_embed(model.shift_right(x)))
        torch.testing.assert_close(out, F.linear(feats, head.weight, head.bias))
