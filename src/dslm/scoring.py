"""A model's own log-likelihood of token sequences (``Model.score``), and the denoiser's
log-probs on a masked state (shared with ``dslm.analyze``).

* AR: exact, ``log p(x) = sum_i log p(x_i | x_<i)``.
* MDLM and DSL: minus the masked-diffusion NELBO, a lower bound on ``log p(x)`` of the
  distribution their masked samplers draw from as T -> infinity (one token revealed
  per step in a uniformly random order, i.e. ``roar-ar`` with k = 1). For a sequence
  of n tokens, orders sigma uniform over permutations,

      p(x) = E_sigma prod_k p(x_sigma(k) | x_sigma(<k))
      log p(x) >= E_sigma sum_k log p(x_sigma(k) | x_sigma(<k)) = -NELBO     (Jensen)

  and, grouping the orders by the revealed set R of size k (uniform over k-subsets,
  the next position uniform over the n - k others),

      NELBO = n E_{k ~ U{0..n-1}} E_{R, |R| = k} [ 1/(n - k) sum_{i not in R} -log p(x_i | x_R) ],

  which for a denoiser that ignores time equals MDLM's continuous-time NELBO
  (docs/MATH.md §5) in expectation. It is estimated with J seeded draws per text, k
  stratified over the J draws (k_j = floor((j + u) n / J)). A time-conditioned MDLM is
  given its noise level at the masked fraction t = (n - k)/n. The DSL denoiser reads
  the state on its masked endpoint path: revealed -> ``snr_max e_x``, masked -> y = 0
  (the ROAR path it was trained on); DSL's continuous SNR path has no tractable
  likelihood here, so this is the bound dslm reports for DSL.
"""

from __future__ import annotations

from typing import Sequence

import torch

from dslm.errors import SamplingError


def masked_log_probs(model, x: torch.Tensor, move_chance: torch.Tensor | float) -> torch.Tensor:
    """log p(x_i = v | state) [B, L, V] (float32, normalised over the V real tokens) of an
    MDLM or DSL denoiser on the discrete state ``x`` ([MASK] = V where unrevealed)."""
    from dslm.sampling.common import Network
    from dslm.sampling.states import token_state

    state = token_state(model, Network(model, x.device), torch.Generator(device=x.device))
    return torch.log_softmax(state.scores(x, move_chance).float(), dim=-1)


def _check(model, ids: Sequence[Sequence[int]]) -> None:
    longest = int(model.config.seq_len)
    for n, seq in enumerate(ids):
        if len(seq) == 0:
            raise SamplingError(f"text {n} has no tokens to score")
        if len(seq) > longest:
            raise SamplingError(f"text {n} has {len(seq)} tokens, more than the model's "
                                f"{longest} positions")
        if min(seq) < 0 or max(seq) >= model.vocab_size:
            raise SamplingError(f"text {n} holds a token id outside [0, {model.vocab_size})")


@torch.no_grad()
def nelbo(model, seq: Sequence[int], num_draws: int, generator: torch.Generator) -> float:
    """The J-draw stratified estimate of the NELBO (nats) of one sequence (module doc)."""
    from dslm.sampling.common import model_device

    device = model_device(model)
    x0 = torch.as_tensor(list(seq), dtype=torch.long, device=device)
    n = x0.numel()
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    ks = [min(n - 1, int((j + u) * n / num_draws)) for j in range(num_draws)]
    total = 0.0
    rows = max(1, 2 ** 16 // n)                                   # draws per forward call
    for start in range(0, num_draws, rows):
        chunk = ks[start:start + rows]
        keys = torch.rand(len(chunk), n, generator=generator, dtype=torch.float64).to(device)
        rank = keys.argsort(dim=1).argsort(dim=1)                 # a uniform random order
        k = torch.tensor(chunk, device=device)[:, None]
        masked = rank >= k                                        # the n - k not yet revealed
        xt = torch.where(masked, torch.full_like(rank, model.vocab_size), x0.expand_as(rank))
        move = (n - k.squeeze(1)).double() / n
        logp = masked_log_probs(model, xt, move.float())
        nll = -logp.gather(-1, x0.expand_as(rank).unsqueeze(-1)).squeeze(-1)
        per_draw = (nll * masked).sum(1).double() / (n - k.squeeze(1)).double()
        total += float(per_draw.sum())
    return n * total / num_draws


@torch.no_grad()
def log_likelihood(model, ids: Sequence[Sequence[int]], num_draws: int = 16,
                   seed: int = 0) -> list[float]:
    """Per sequence, log p(x) in nats: exact for AR, -NELBO (a lower bound, estimated with
    ``num_draws`` seeded draws) for MDLM and DSL. See the module doc."""
    from dslm.sampling.common import model_device

    if isinstance(num_draws, bool) or not isinstance(num_draws, int) or num_draws < 1:
        raise SamplingError(f"num_draws must be a positive integer, got {num_draws!r}")
    _check(model, ids)
    was_training = model.training
    model.eval()
    try:
        if model.kind == "ar":
            device = model_device(model)
            return [float(model.log_likelihood(torch.tensor([list(s)], device=device)).double().sum())
                    for s in ids]
        gen = torch.Generator().manual_seed(int(seed))
        return [-nelbo(model, s, num_draws, gen) for s in ids]
    finally:
        model.train(was_training)


__all__ = ["log_likelihood", "masked_log_probs", "nelbo"]
