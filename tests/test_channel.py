"""Exactness of the localization channel and the SNR invariance of p(x | y)."""

import itertools
import math

import pytest
import torch

from dslm.diffusion.channel import (evidence, gaussian_log_likelihood, localize, normalize_rows,
                                    posterior, revealed_mask, unit_sphere_embeddings)

V, L, D = 5, 3, 4


def _prior(gen):
    """A non-uniform joint p_data over V^L sequences (a correlated source)."""
    logits = torch.randn(V ** L, generator=gen, dtype=torch.float64) * 1.5
    return torch.softmax(logits, 0)


def _seqs():
    return torch.tensor(list(itertools.product(range(V), repeat=L)))      # [V^L, L]


def _bayes_posterior(y, snr, E, prior):
    """Brute force: p(x | y) ∝ p(x) prod_i N(y_i; s_i e_{x_i}, s_i I)."""
    ll = gaussian_log_likelihood(y[None], snr[None], E)[0]                # [L, V]
    seqs = _seqs()
    logj = torch.log(prior) + ll[torch.arange(L), seqs].sum(-1)
    return torch.softmax(logj, 0)


def _evidence_posterior(y, E, prior):
    """The SNR-free formula: p(x | y) ∝ p(x) prod_i exp(<y_i, e_{x_i}>)."""
    ell = evidence(y[None], E)[0]                                         # [L, V]
    seqs = _seqs()
    return torch.softmax(torch.log(prior) + ell[torch.arange(L), seqs].sum(-1), 0)


def test_unit_sphere_embeddings_seeded_and_unit():
    a = unit_sphere_embeddings(7, 3, torch.Generator().manual_seed(0))
    b = unit_sphere_embeddings(7, 3, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert torch.allclose(a.norm(dim=-1), torch.ones(7), atol=1e-6)
    c = unit_sphere_embeddings(7, 3, torch.Generator().manual_seed(1))
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("snrs", [(0.3, 0.3, 0.3), (0.5, 2.0, 7.0), (4.0, 0.1, 1.0), (10.0, 10.0, 0.2)])
def test_evidence_posterior_equals_bayes_for_unit_norm(gen, snrs):
    E = unit_sphere_embeddings(V, D, gen).double()
    prior = _prior(gen)
    x = torch.tensor([[1, 4, 2]])
    snr = torch.tensor([snrs], dtype=torch.float64)
    y = localize(x, snr, E, gen)[0]
    exact = _bayes_posterior(y, snr[0], E, prior)
    formula = _evidence_posterior(y, E, prior)
    assert torch.allclose(exact, formula, atol=1e-6, rtol=0)


def test_posterior_depends_on_snr_without_unit_norm(gen):
    """With rows of different norms the -s||e||^2/2 term no longer cancels."""
    E = unit_sphere_embeddings(V, D, gen).double() * torch.linspace(0.5, 2.0, V, dtype=torch.float64)[:, None]
    prior = _prior(gen)
    y = torch.randn(L, D, generator=gen, dtype=torch.float64)
    p1 = _bayes_posterior(y, torch.full((L,), 0.5, dtype=torch.float64), E, prior)
    p2 = _bayes_posterior(y, torch.full((L,), 4.0, dtype=torch.float64), E, prior)
    assert (p1 - p2).abs().max() > 1e-2
    # and the SNR-free formula is then wrong for at least one of them
    formula = _evidence_posterior(y, E, prior)
    assert max((p1 - formula).abs().max(), (p2 - formula).abs().max()) > 1e-2


def test_same_y_same_posterior_at_any_snr(gen):
    """For unit rows the exact posterior of a fixed y is the same whatever s produced it."""
    E = unit_sphere_embeddings(V, D, gen).double()
    prior = _prior(gen)
    y = torch.randn(L, D, generator=gen, dtype=torch.float64)
    ps = [_bayes_posterior(y, torch.full((L,), s, dtype=torch.float64), E, prior) for s in (0.2, 1.0, 9.0)]
    for p in ps[1:]:
        assert torch.allclose(ps[0], p, atol=1e-10)


def test_localize_endpoints_and_moments(gen):
    E = unit_sphere_embeddings(V, D, gen)
    x = torch.randint(0, V, (2000, 3), generator=gen)
    snr = torch.tensor([0.0, float("inf"), 4.0]).expand(2000, 3)
    y = localize(x, snr, E, gen, snr_max=100.0)
    assert torch.isfinite(y).all()
    assert torch.equal(y[:, 0], torch.zeros_like(y[:, 0]))             # s = 0: the mask state
    assert torch.allclose(y[:, 1], 100.0 * E[x[:, 1]])                  # s = inf: exact, finite
    resid = y[:, 2] - 4.0 * E[x[:, 2]]                                  # s = 4: noise var = s
    assert abs(resid.mean().item()) < 0.05
    assert abs(resid.var().item() - 4.0) < 0.2
    assert revealed_mask(snr)[:, 1].all() and not revealed_mask(snr)[:, [0, 2]].any()


def test_localize_rejects_bad_snr(gen):
    E = unit_sphere_embeddings(V, D, gen)
    x = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError):
        localize(x, torch.tensor([[-1.0, 1.0]]), E, gen)
    with pytest.raises(ValueError):
        localize(x, torch.tensor([[float("nan"), 1.0]]), E, gen)


def test_posterior_is_softmax_of_evidence(gen):
    E = unit_sphere_embeddings(V, D, gen)
    y = torch.randn(2, L, D, generator=gen)
    p = posterior(y, E)
    assert torch.allclose(p.sum(-1), torch.ones(2, L))
    assert torch.allclose(p, torch.softmax(y @ E.t(), -1), atol=1e-6)
    # zero evidence is the uniform posterior (the [MASK] state)
    assert torch.allclose(posterior(torch.zeros(1, 1, D), E), torch.full((1, 1, V), 1 / V))


def test_normalize_rows_rejects_zero_row():
    with pytest.raises(ValueError):
        normalize_rows(torch.zeros(2, 3))
    assert math.isclose(normalize_rows(torch.tensor([[3.0, 4.0]])).norm().item(), 1.0, rel_tol=1e-6)
