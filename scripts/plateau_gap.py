"""How far below the unigram plateau an MDLM checkpoint is, measured on paired draws.

    python scripts/plateau_gap.py RUN_OR_CHECKPOINT [...] [--draws 4] [--batches 8]

For each checkpoint (trained by dslm, so it records its data config), over ``--draws``
sets of validation noise (each: ``--batches`` validation batches of the run's batch
size, mask rates t and masks), the model's NELBO and the NELBO of the frequencies-only
denoiser (dslm.train.unigram) on *the same* draws, and their paired gap with its
standard error over batches. Prints one JSON line per checkpoint. docs/RECIPE.md
explains why the gap, not NELBO - H_1, says whether a model left the plateau.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

#: this script's noise stream in dslm.train.batches.derive_seed: apart from training (0),
#: validation (1) and data order (2), so its draw sets are not the runs' own validation draws
STREAM = 7


def plateau_gap(model, data, draws: int = 4, batches: int = 8, batch_size: int = 16) -> dict:
    """{model, unigram, gap, gap_se, batches}: mean NELBOs and the paired gap (nats)."""
    import torch

    from dslm.diffusion.losses import mdlm_loss
    from dslm.train.batches import derive_seed, val_batches
    from dslm.train.unigram import UnigramDenoiser, token_counts

    unigram = UnigramDenoiser(token_counts(data.train, int(data.tokenizer.vocab_size)), model.mask_id).eval()
    sets = val_batches(data.val, batch_size, batches)
    g = torch.Generator()
    ours, theirs = [], []
    for d in range(draws):
        for i, idx in enumerate(sets):
            x0 = torch.from_numpy(np.asarray(data.val[idx], dtype=np.int64))
            with torch.no_grad():
                for target, den in ((ours, model), (theirs, unigram)):
                    g.manual_seed(derive_seed(d, STREAM, i))
                    target.append(mdlm_loss(den, x0, g).loss.item())
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    gap = ours - theirs
    return {"model": round(float(ours.mean()), 4), "unigram": round(float(theirs.mean()), 4),
            "gap": round(float(gap.mean()), 4),
            "gap_se": round(float(gap.std(ddof=1) / np.sqrt(len(gap))) if len(gap) > 1 else 0.0, 4),
            "batches": int(len(gap))}


def main(argv: list[str] | None = None) -> int:
    import torch

    from dslm.data.prepare import prepare_data
    from dslm.models.checkpoint import open_checkpoint
    from dslm.train.unigram import token_counts, unigram_entropy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for source in args.checkpoints:
        ck = open_checkpoint(source, expect_kind="mdlm")
        data = prepare_data(ck.data_config(), progress=False)
        h1 = unigram_entropy(token_counts(data.train, int(data.tokenizer.vocab_size)))
        result = plateau_gap(ck.model.eval(), data, args.draws, args.batches, args.batch_size)
        print(json.dumps({"checkpoint": str(source), "step": ck.step, "unigram_entropy": round(h1, 4),
                          **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
