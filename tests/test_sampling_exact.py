"""Exactness against a known distribution: ORACLE denoisers computed by enumeration.

The source is a correlated joint p(x) over |V|^L = 4^3 sequences. The MDLM oracle
returns the exact SUBS marginals p(x_i | x_t); the DSL oracle the exact marginals
p(x_i | y) ∝ sum_x p(x) prod_j exp(<y_j, e_{x_j}>). With them, ``mdlm`` (many steps),
``roar-ar`` (k = 1) and ``dsl-continuous`` (fine grid, high final SNR) must draw from
p(x): a chi-square goodness-of-fit test at a fixed seed accepts them, and the same
test rejects a wrong source and the one-step sampler (a product of marginals).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy.stats import chisquare
from torch import nn

from dslm.models.mdlm import NEG_INF
from dslm.sampling import sample

VOCAB, LENGTH, DIM = 4, 3, 4
NUM_SAMPLES = 6000


def source_probs(seed: int = 0) -> torch.Tensor:
    """A correlated joint over the 4^3 sequences (float64, sums to 1)."""
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(1.2 * torch.randn(VOCAB ** LENGTH, generator=g, dtype=torch.float64), 0)


SEQUENCES = torch.tensor(list(itertools.product(range(VOCAB), repeat=LENGTH)))   # [S, L]
ONE_HOT = nn.functional.one_hot(SEQUENCES, VOCAB).double()                     # [S, L, V]


class Oracle(nn.Module):
    """Exact per-token marginals of p(x) given evidence, by enumerating every sequence."""

    def __init__(self, probs: torch.Tensor):
        super().__init__()
        self.vocab_size = VOCAB
        self.register_buffer("log_p", probs.log())
        self.calls = 0

    def marginals(self, ell: torch.Tensor) -> torch.Tensor:
        """log p(x_i = v | evidence) [B, L, V] for per-token log-evidence ell [B, L, V]:
        the posterior over sequences is p(x) prod_j exp(ell_j(x_j))."""
        self.calls += 1
        log_w = torch.einsum("blv,slv->bs", ell, ONE_HOT)
        w = torch.softmax(log_w + self.log_p, dim=-1)
        return torch.einsum("bs,slv->blv", w, ONE_HOT).clamp_min(1e-300).log()


class MDLMOracle(Oracle):
    kind = "mdlm"
    uses_time = False

    def __init__(self, probs):
        super().__init__(probs)
        self.mask_id = VOCAB

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """Exact SUBS output: a revealed x_j rules out every other token at j."""
        masked = (x == self.mask_id).unsqueeze(-1)
        allowed = masked | (torch.arange(VOCAB) == x.unsqueeze(-1))
        ell = torch.where(allowed, 0.0, -1e4).double()
        logp = self.marginals(ell).float().clamp_min(NEG_INF)
        return torch.cat([logp, torch.full_like(logp[..., :1], NEG_INF)], dim=-1)


class DSLOracle(Oracle):
    kind = "dsl"
    snr_max = 100.0

    def __init__(self, probs, seed: int = 0):
        super().__init__(probs)
        g = torch.Generator().manual_seed(seed)
        e = torch.randn(VOCAB, DIM, generator=g, dtype=torch.float64)
        self.register_buffer("table", e / e.norm(dim=-1, keepdim=True))

    @property
    def embeddings(self) -> torch.Tensor:
        return self.table.float()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Exact log p(x_i | y) with the evidence ell_j(v) = <y_j, e_v>."""
        return self.marginals(y.double() @ self.table.t()).float()


def sequence_index(tokens: torch.Tensor) -> torch.Tensor:
    weights = VOCAB ** torch.arange(LENGTH - 1, -1, -1)
    return (tokens * weights).sum(-1)


def chi_square_pvalue(tokens: torch.Tensor, probs: torch.Tensor) -> float:
    """Goodness of fit of the sequences in ``tokens`` to ``probs`` (cells with < 5 expected pooled)."""
    counts = torch.bincount(sequence_index(tokens), minlength=len(probs)).double()
    expected = probs * len(tokens)
    small = expected < 5
    obs, exp = counts[~small], expected[~small]
    if bool(small.any()):
        obs = torch.cat([obs, counts[small].sum().reshape(1)])
        exp = torch.cat([exp, expected[small].sum().reshape(1)])
    return float(chisquare(obs.numpy(), exp.numpy()).pvalue)


@pytest.fixture(scope="module")
def probs():
    return source_probs()


def draw(model, name, steps, seed=0, num_samples=NUM_SAMPLES, **options):
    gen = torch.Generator().manual_seed(seed)
    return sample(model, name, num_samples, LENGTH, steps, gen, **options).tokens


def test_chi_square_accepts_the_source_and_rejects_a_wrong_one(probs):
    exact = SEQUENCES[torch.multinomial(probs, NUM_SAMPLES, replacement=True,
                                        generator=torch.Generator().manual_seed(3))]
    assert chi_square_pvalue(exact, probs) > 0.01
    assert chi_square_pvalue(exact, source_probs(seed=1)) < 1e-6


@pytest.mark.parametrize("oracle", [MDLMOracle, DSLOracle])
def test_roar_ar_is_exact(probs, oracle):
    tokens = draw(oracle(probs), "roar-ar", steps=LENGTH)
    assert chi_square_pvalue(tokens, probs) > 0.01
    assert chi_square_pvalue(tokens, source_probs(seed=1)) < 1e-6


def test_mdlm_is_exact_with_many_steps(probs):
    tokens = draw(MDLMOracle(probs), "mdlm", steps=200, num_samples=3000)
    assert chi_square_pvalue(tokens, probs) > 0.01
    assert chi_square_pvalue(tokens, source_probs(seed=1)) < 1e-6


def test_one_step_mdlm_draws_the_product_of_marginals_and_is_rejected(probs):
    tokens = draw(MDLMOracle(probs), "mdlm", steps=1)
    assert chi_square_pvalue(tokens, probs) < 1e-6
    marginals = torch.einsum("s,slv->lv", probs, ONE_HOT)
    product = marginals[torch.arange(LENGTH), SEQUENCES].prod(-1)
    assert chi_square_pvalue(tokens, product) > 0.01


@pytest.mark.slow
@pytest.mark.parametrize("decode", ["sample", "argmax"])
def test_dsl_continuous_is_exact_on_a_fine_grid(probs, decode):
    tokens = draw(DSLOracle(probs), "dsl-continuous", steps=500, num_samples=4000,
                  decode=decode, snr_end=400.0)
    assert chi_square_pvalue(tokens, probs) > 0.01
    assert chi_square_pvalue(tokens, source_probs(seed=1)) < 1e-6


def test_dsl_continuous_with_one_call_draws_independent_tokens(probs):
    """T = 1 decodes at y = 0: every token from its marginal (the test must reject it)."""
    tokens = draw(DSLOracle(probs), "dsl-continuous", steps=1, decode="sample")
    assert chi_square_pvalue(tokens, probs) < 1e-6


def product_source(seed: int = 5) -> torch.Tensor:
    """A source whose tokens are independent: p(x) = prod_i m_i(x_i) (float64 over 4^3)."""
    g = torch.Generator().manual_seed(seed)
    marg = torch.softmax(1.5 * torch.randn(LENGTH, VOCAB, generator=g, dtype=torch.float64), -1)
    return marg[torch.arange(LENGTH), SEQUENCES].prod(-1)


@pytest.mark.parametrize("decode", ["sample", "evidence"])
def test_ancestral_continuous_steps_are_exact_on_a_coarse_grid(decode):
    """With independent tokens the exact posterior factorises, so the ancestral step
    (drift = e(x~), x~ ~ p(x | y)) moves y by its exact transition whatever the step
    size: T = 4 calls already draw from p(x) (decoding at snr_max by a draw or by the
    evidence argmax_v <y, e_v>). Euler-Maruyama (drift = xhat(y)) on the same grid
    collapses toward the mode and is rejected."""
    prod = product_source()
    exact = draw(DSLOracle(prod), "dsl-continuous", steps=4, drift="sample", decode=decode)
    assert chi_square_pvalue(exact, prod) > 0.01
    euler = draw(DSLOracle(prod), "dsl-continuous", steps=4, drift="mean", decode="sample")
    assert chi_square_pvalue(euler, prod) < 1e-6


def test_argmax_decoding_at_a_low_final_snr_is_mode_seeking():
    """Ending the grid at SNR 5 leaves the last posterior soft: a draw from it is exact,
    its argmax is not (at snr_max = 100 the two agree)."""
    prod = product_source()
    drawn = draw(DSLOracle(prod), "dsl-continuous", steps=4, snr_end=5.0, decode="sample")
    assert chi_square_pvalue(drawn, prod) > 0.01
    argmax = draw(DSLOracle(prod), "dsl-continuous", steps=4, snr_end=5.0, decode="argmax")
    assert chi_square_pvalue(argmax, prod) < 1e-6
