"""GPU memory and time estimates for the `small` preset (the figures in docs/SCALE.md).

    python scripts/slurm/estimate.py [--batch 40] [--seq-len 1024] [--mfu 0.4]

* Parameters: counted on ``dslm.models.preset('small', kind=...)``.
* Activations: the bytes autograd keeps for backward, measured on CPU under bf16
  autocast in train mode (dropout on), running the real training loss of each kind
  for 1 and 2 sequences; the difference is one sequence's cost, scaled to --batch.
  (Flash/efficient SDPA on GPU keeps no L x L matrix either.)
* Static memory: fp32 weights, fp32 grads, AdamW moments, EMA copy, bf16 weight
  copies of autocast = 22 bytes per parameter; DDP adds 4 more (gradient buckets).
* FLOPs per token: 6 N_dense + 12 n_blocks L d (attention scores and mixing, forward
  + backward), N_dense = weights used in matrix products (MDLM/AR: all but the input
  lookup table; DSL: all, its converter multiplies by W_in, plus the E table).
These are estimates, not measurements on a GPU.
"""

from __future__ import annotations

import argparse

import torch

from dslm.models import build_model, count_parameters, preset

PEAK_BF16 = {"A100 (312 TFLOP/s)": 312e12, "H100 SXM (989 TFLOP/s)": 989e12}
GIB = 2 ** 30


def saved_bytes(kind: str, model: torch.nn.Module, batch: int,
                seq_len: int) -> tuple[int, list[int]]:
    """Bytes of the tensors autograd saves for backward in one training forward.

    Returns the total and the bytes saved inside each block (parameters excluded).
    """
    from dslm.diffusion.schedules import ScheduleConfig
    from dslm.train.objectives import objective_for
    from dslm.train.config import TrainConfig

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = [0]

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr not in seen:
            seen.add(ptr)
            total[0] += t.untyped_storage().nbytes()
        return t

    marks: list[int] = []
    for block in model.backbone.blocks:
        block.register_forward_pre_hook(lambda *_: marks.append(total[0]))
        block.register_forward_hook(lambda *_: marks.append(total[0]))
    loss_fn = objective_for(kind, ScheduleConfig(), TrainConfig())
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, model.config.vocab_size, (batch, seq_len), generator=g)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16):
        loss_fn(model.train(), x0, g).loss
    per_block = [marks[i + 1] - marks[i] for i in range(0, len(marks), 2)]
    return total[0], per_block


def dense_params(kind: str, model: torch.nn.Module) -> int:
    n = count_parameters(model)
    if kind == "dsl":
        return n + model.embeddings.numel()
    return n - model.backbone.vocab_embed.embedding.numel()


def estimate(kind: str, batch: int, seq_len: int, mfu: float) -> dict:
    cfg = preset("small", kind=kind, seq_len=seq_len)
    model = build_model(cfg)
    n = count_parameters(model)
    one, block_one = saved_bytes(kind, model, 1, seq_len)
    two, block_two = saved_bytes(kind, build_model(cfg), 2, seq_len)
    per_seq, per_block_seq = two - one, block_two[0] - block_one[0]
    block_input = seq_len * cfg.hidden_size * 4            # fp32 residual stream
    acts = batch * per_seq
    acts_ckpt = batch * (per_seq - cfg.n_blocks * per_block_seq
                         + cfg.n_blocks * block_input + per_block_seq)
    flops_token = 6 * dense_params(kind, model) + 12 * cfg.n_blocks * seq_len * cfg.hidden_size
    step_flops = flops_token * batch * seq_len
    return dict(kind=kind, params=n, static=22 * n, acts=acts, acts_ckpt=acts_ckpt,
                per_block=batch * per_block_seq, flops_token=flops_token,
                step_s={gpu: step_flops / (peak * mfu) for gpu, peak in PEAK_BF16.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=40, help="sequences per GPU micro-batch")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOPs utilisation")
    parser.add_argument("--kinds", default="mdlm,dsl,ar")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"batch {args.batch} x {args.seq_len} tokens per GPU, bf16 autocast, "
          f"assumed MFU {args.mfu:.0%}\n")
    print("| kind | params | static (22 B/param) | activations | with act. checkpointing "
          "| one block | GFLOP/token | " + " | ".join(f"s/step {g}" for g in PEAK_BF16) + " |")
    print("|" + " --- |" * (7 + len(PEAK_BF16)))
    for kind in args.kinds.split(","):
        e = estimate(kind, args.batch, args.seq_len, args.mfu)
        steps = " | ".join(f"{s:.3f}" for s in e["step_s"].values())
        print(f"| {kind} | {e['params'] / 1e6:.1f}M | {e['static'] / GIB:.1f} GiB "
              f"| {e['acts'] / GIB:.1f} GiB | {e['acts_ckpt'] / GIB:.1f} GiB "
              f"| {e['per_block'] / GIB:.2f} GiB | {e['flops_token'] / 1e9:.3f} | {steps} |")


if __name__ == "__main__":
    main()
