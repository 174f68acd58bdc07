import inspect

import pytest
import torch

from conftest import tiny_model_config
from dslm.diffusion.channel import clean_point
from dslm.diffusion.losses import ar_loss, dsl_loss, mdlm_loss
from dslm.diffusion.schedules import ScheduleConfig
from dslm.models import build_model
from dslm.models.convert import dsl_from_mdlm
from dslm.models.mdlm import NEG_INF


def _randomise(model, gen, scale=0.05):
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 1 and p.requires_grad and p.numel() > 1:
                p.add_(scale * torch.randn(p.shape, generator=gen))
    return model


@pytest.mark.parametrize("kind,out", [("dsl", 12), ("mdlm", 13), ("ar", 12)])
def test_forward_shapes(kind, out, gen):
    model = build_model(tiny_model_config(kind))
    x = torch.randint(0, 12, (3, 10), generator=gen)
    inp = torch.randn(3, 10, 8, generator=gen) if kind == "dsl" else x
    assert model(inp).shape == (3, 10, out)


def test_dsl_takes_no_time_input_and_is_deterministic(gen):
    model = _randomise(build_model(tiny_model_config("dsl")), gen).eval()
    params = [name for name, p in inspect.signature(model.forward).parameters.items()
              if p.kind is not inspect.Parameter.KEYWORD_ONLY]       # targets=, weights=: the loss
    assert params == ["y"]
    with pytest.raises(TypeError):
        model(torch.zeros(1, 4, 8), torch.ones(1))
    y = torch.randn(2, 6, 8, generator=gen)
    assert torch.equal(model(y), model(y.clone()))


def test_dsl_embeddings_unit_and_frozen(gen):
    model = build_model(tiny_model_config("dsl"))
    assert torch.allclose(model.embeddings.norm(dim=-1), torch.ones(12), atol=1e-6)
    assert "embed_directions" not in dict(model.named_parameters())
    trainable = build_model(tiny_model_config("dsl", freeze_embed=False))
    with torch.no_grad():
        trainable.embed_directions.mul_(3.0)
    assert torch.allclose(trainable.embeddings.norm(dim=-1), torch.ones(12), atol=1e-6)


def test_dsl_converter_endpoints():
    """y = 0 reads [MASK] with weight 0.99; a committed token reads itself with >= 0.99."""
    model = build_model(tiny_model_config("dsl", vocab_size=40))
    p0 = torch.softmax(model.input_scores(torch.zeros(1, 1, 8)), -1)
    assert abs(p0[0, 0, 40].item() - 0.99) < 1e-5
    x = torch.arange(40)[None]
    y = clean_point(x, model.embeddings, model.snr_max)
    p = torch.softmax(model.input_scores(y), -1)
    assert (p[0, torch.arange(40), torch.arange(40)] >= 0.99 - 1e-4).all()


def test_mdlm_subs_properties(gen):
    model = _randomise(build_model(tiny_model_config("mdlm")), gen).eval()
    x = torch.randint(0, 12, (2, 8), generator=gen)
    x[:, ::2] = model.mask_id
    logp = model(x)
    assert (logp[..., model.mask_id] <= NEG_INF / 2).all()               # never predicts [MASK]
    assert torch.allclose(logp.exp().sum(-1), torch.ones(2, 8), atol=1e-5)
    unmasked = x != model.mask_id
    carried = logp.argmax(-1)
    assert torch.equal(carried[unmasked], x[unmasked])                    # carry-over
    assert torch.allclose(logp.gather(-1, x.clamp(max=11).unsqueeze(-1)).squeeze(-1)[unmasked],
                          torch.zeros(int(unmasked.sum())))


def test_mdlm_time_input_only_when_enabled(gen):
    off = _randomise(build_model(tiny_model_config("mdlm")), gen).eval()
    x = torch.full((1, 6), off.mask_id)
    assert torch.equal(off(x, torch.tensor([0.1])), off(x, torch.tensor([3.0])))
    on = build_model(tiny_model_config("mdlm", time_conditioning=True))
    _randomise(on, gen, scale=0.5).eval()
    assert not torch.allclose(on(x, torch.tensor([0.1])), on(x, torch.tensor([3.0])))


def test_ar_is_causal(gen):
    model = _randomise(build_model(tiny_model_config("ar")), gen, 0.3).eval()
    x = torch.randint(0, 12, (1, 8), generator=gen)
    x2 = x.clone()
    x2[0, 5] = (x[0, 5] + 1) % 12
    a, b = model(x), model(x2)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6)                  # positions <= 5 unchanged
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_dsl_from_mdlm_matches_mdlm_on_endpoints(gen):
    mdlm = _randomise(build_model(tiny_model_config("mdlm", vocab_size=20)), gen, 0.2).eval()
    x = torch.randint(0, 20, (2, 10), generator=gen)
    masked = torch.rand(2, 10, generator=gen) < 0.5
    xt = torch.where(masked, torch.full_like(x, mdlm.mask_id), x)
    ref = torch.log_softmax(mdlm.logits(xt)[..., :20].float(), -1)
    errors = []
    for w in (0.99, 1 - 1e-7):
        dsl = dsl_from_mdlm(mdlm, embed_dim=8, mask_weight=w).eval()
        y = torch.where(masked.unsqueeze(-1), torch.zeros(2, 10, 8), clean_point(x, dsl.embeddings, dsl.snr_max))
        out = torch.log_softmax(dsl(y).float(), -1)
        errors.append((out - ref).abs().max().item())
    assert errors[0] < 0.1           # the paper's 0.99 converter: close
    assert errors[1] < 1e-4          # the converter's endpoint limit: MDLM exactly
    assert errors[1] < errors[0]


def _corpus(gen, n=64, length=16, vocab=12):
    """A tiny structured corpus: arithmetic progressions mod vocab."""
    start = torch.randint(0, vocab, (n, 1), generator=gen)
    step = torch.randint(1, 3, (n, 1), generator=gen)
    return (start + step * torch.arange(length)) % vocab


@pytest.mark.parametrize("kind", ["dsl", "mdlm", "ar"])
def test_losses_decrease(kind, gen):
    torch.manual_seed(0)
    model = build_model(tiny_model_config(kind))
    data = _corpus(gen)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sch = ScheduleConfig()

    def step():
        idx = torch.randint(0, len(data), (16,), generator=gen)
        x = data[idx]
        if kind == "dsl":
            return dsl_loss(model, x, sch, gen)
        if kind == "mdlm":
            return mdlm_loss(model, x, gen)
        return ar_loss(model, x)

    first = sum(step().loss.item() for _ in range(5)) / 5
    for _ in range(200):
        out = step()
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    last = sum(step().loss.item() for _ in range(10)) / 10
    assert last < 0.6 * first, (first, last)
