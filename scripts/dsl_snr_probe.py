"""What a DSL denoiser sees and predicts at each SNR, on held-out text.

    python scripts/dsl_snr_probe.py CKPT [--blocks 8] [--snrs 0.1,1,5,10,20,44,60,100]

For held-out blocks x and each SNR s, every position is put at y = s e_x + sqrt(s) eps
(the training channel with one SNR per sequence) and the script reports:
  w_true   the input converter's weight on the true token's slot,
           softmax(beta <y, e_v> + b_v ; b_mask)[x]     (how visible the evidence is)
  w_mask   its weight on the [MASK] slot
  acc      accuracy of argmax p(x_i | y), and p_true its mean probability of x_i
  H        the mean entropy of p(x_i | y) (nats); the unigram level is H at s = 0
and the converter's visibility threshold s* = (b_mask - mean b_v) / beta: below it a
position's input is mostly the [MASK] embedding, whatever y says.
"""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--snrs", default="0,1,5,10,20,30,44,60,100")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from dslm.models.checkpoint import open_checkpoint
    from dslm.evaluate.reference import load_reference

    opened = open_checkpoint(args.ckpt)
    model, tok = opened.model, opened.tokenizer()
    model.eval()
    L = model.config.seq_len
    texts = load_reference("validation", 4 * args.blocks, 0, checkpoint=args.ckpt)
    rows = [ids for ids in (tok.encode(t) for t in texts) if len(ids) >= L][:args.blocks]
    x = torch.tensor([ids[:L] for ids in rows])
    E = model.embeddings.detach().float()
    beta = float(model.input_beta)
    b = model.input_bias.detach().float()
    print(f"beta {beta:.4f}  b_mask {float(b[-1]):.2f}  visibility threshold s* = "
          f"{float((b[-1] - b[:-1].mean()) / beta):.1f}  (snr_max {float(model.snr_max):g})")
    print("| s | w_true | w_mask | acc | p_true | H (nats) |\n|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for s in [float(v) for v in args.snrs.split(",")]:
            y = s * E[x] + s ** 0.5 * torch.randn(*x.shape, E.shape[1], generator=g)
            w = torch.softmax(model.input_scores(y), dim=-1)
            p = torch.softmax(model(y).float(), -1)
            ent = -(p * p.clamp_min(1e-30).log()).sum(-1).mean()
            print(f"| {s:g} | {float(w.gather(-1, x[..., None]).mean()):.3f} | "
                  f"{float(w[..., -1].mean()):.3f} | {float((p.argmax(-1) == x).float().mean()):.3f} | "
                  f"{float(p.gather(-1, x[..., None]).mean()):.3f} | {float(ent):.2f} |")


if __name__ == "__main__":
    main()
