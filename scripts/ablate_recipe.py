"""Which of the reference recipe's switches matter? A resumable CPU-scale ablation.

    nice -n 5 python scripts/ablate_recipe.py --out results/ablation [--seeds 0,1,2]
        [--finetune-steps 100] [--num-samples 32] [--steps 8,16,32]

1. trains ONE tiny MDLM (``configs/tiny-mdlm.yaml``, embedded corpus) and one tiny AR
   judge (``configs/tiny-ar.yaml``), or reuses them (``--mdlm``, ``--judge``);
2. for every variant (dslm's defaults, then one reference-recipe switch flipped at a
   time, then all of them together) and every seed, fine-tunes DSL from that same
   MDLM for the same number of updates (``configs/tiny-dsl.yaml``, cosine lr with 20
   warm-up steps, as the demo's fine-tune; the seed sets data order and noise);
3. scores each fine-tune by validation cross-entropy on NON-revealed tokens of the same
   held-out blocks with the same noise draws, under ROAR endpoint states and under
   log-normal states (noise-free revealed points, whatever the variant trained on);
4. sweeps ``dsl-mdlm`` and ``dsl-remdm-loop`` at each T (gen PPL under the AR judge,
   unigram entropy, MAUVE vs held-out text), and ``dsl-continuous`` on the default
   fine-tune with the SNR grid ending at snr_max vs at 5 (the reference's end);
5. writes ``ablation.json`` (every raw figure) and ``ablation.md`` (mean +- std over
   seeds, and the difference to the default with its spread).

Every stage is resumable: a finished fine-tune, score or sweep point is never redone,
an interrupted fine-tune resumes from its saved state. Run it under ``nice``; it sets
one torch thread (quality, not speed, is measured).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: variant -> (what it flips, the overrides applied to configs/tiny-dsl.yaml)
VARIANTS = {
    "default": ("dslm's defaults (calibrated beta, frozen E, noise-free revealed, "
                "Bernoulli ROAR share, EOS scored, no mix term)", []),
    "beta_inv_sqrt_d": ("converter beta starts at 1/sqrt(d)", ["model.beta_init=inv_sqrt_d"]),
    "train_directions": ("unit-sphere directions trained (rows renormalised)",
                         ["model.freeze_embed=false"]),
    "revealed_noise": ("revealed tokens at s = snr_max with channel noise",
                       ["schedule.revealed_noise=true"]),
    "roar_exact": ("exactly a quarter of each batch on ROAR", ["schedule.roar_share=exact"]),
    "exclude_eos": ("EOS positions left out of the loss", ["train.loss_exclude_eos=true"]),
    "mix_add": ("CE + 0.25 ROAR (second draw)", ["train.mix_lambda=0.25", "train.mix_formula=add"]),
    "mix_convex": ("0.75 CE + 0.25 ROAR (the reference's formula)",
                   ["train.mix_lambda=0.25", "train.mix_formula=convex"]),
    "reference_all": ("every reference switch at once (beta, directions, noise, exact share, "
                      "EOS, revealed scored)",
                      ["model.beta_init=inv_sqrt_d", "model.freeze_embed=false",
                       "schedule.revealed_noise=true", "schedule.roar_share=exact",
                       "train.loss_exclude_eos=true", "train.loss_on_revealed=true"]),
}

DSL_FIELDS_FROM_CONFIG = ("embed_dim", "freeze_embed", "beta_init")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Results:
    """``ablation.json``: every raw figure, saved atomically after each one."""

    def __init__(self, path: Path):
        self.path = path
        self.doc = json.loads(path.read_text()) if path.is_file() else {"runs": {}}

    def get(self, *keys):
        node = self.doc
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
            if node is None:
                return None
        return node

    def put(self, value, *keys) -> None:
        from dslm.io import atomic_write_json

        node = self.doc
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
        atomic_write_json(self.path, self.doc)


def run_config(name: str, out_dir: Path, steps: int, seed: int, extra: list[str]):
    from dslm.train.config import load_run_config

    overrides = [f"train.steps={steps}", f"train.seed={seed}", "train.log_every=50",
                 f"train.eval_every={steps}", "train.eval_batches=4",
                 f"train.checkpoint_every={max(25, steps // 2)}", "train.device=cpu",
                 "train.num_threads=1", *extra]
    return load_run_config(str(ROOT / "configs" / f"tiny-{name}.yaml"), overrides,
                           out_dir=str(out_dir))


def train_base(name: str, out: Path, steps: int, extra: list[str]) -> Path:
    from dslm.train import train

    cfg = run_config(name, out, steps, 0, extra)
    if not (out / "DONE").is_file():
        log(f"training {name} ({steps} steps) -> {out}")
        train(cfg, resume=True, progress=False)
        (out / "DONE").write_text("ok\n")
    return out


def finetune(mdlm: Path, out: Path, steps: int, seed: int, overrides: list[str]) -> Path:
    """DSL from ``mdlm`` with ``overrides``; resumes an interrupted run, skips a finished one."""
    from dslm.train import train
    from dslm.train.starts import finetune_start
    from dslm.train.state import STATE_DIR

    cfg = run_config("dsl", out, steps, seed,
                     ["train.lr_schedule=cosine", "train.warmup_steps=20", *overrides])
    done = out / "DONE"
    if done.is_file():
        return out
    fresh = not (out / STATE_DIR).exists()
    settings = {k: v for k, v in dataclasses.asdict(cfg.model).items() if k in DSL_FIELDS_FROM_CONFIG}
    start = finetune_start(mdlm, settings) if fresh else None
    train(cfg, resume=True, init_model=start, progress=False)
    done.write_text("ok\n")
    return out


def validation_ce(ckpt: Path, blocks: int, seed: int) -> dict:
    """Mean CE (nats) on non-revealed tokens of the first ``blocks`` validation blocks."""
    import numpy as np
    import torch

    from dslm.data import prepare_data
    from dslm.diffusion.losses import dsl_loss
    from dslm.diffusion.schedules import ScheduleConfig
    from dslm.models import checkpoint

    opened = checkpoint.open_checkpoint(ckpt, expect_kind="dsl")
    model, data_cfg = opened.model, opened.data_config()
    val = np.asarray(prepare_data(data_cfg, progress=False).val[:blocks], dtype=np.int64)
    out = {}
    for name in ("roar", "lognormal"):
        gen = torch.Generator().manual_seed(seed)
        total = terms = 0.0
        with torch.no_grad():
            for i in range(0, len(val), 16):
                res = dsl_loss(model, torch.from_numpy(val[i:i + 16]), ScheduleConfig(name=name), gen)
                total += float(res.loss) * float(res.terms)
                terms += float(res.terms)
        out[f"ce_{name}"] = total / terms
    return out


def sweep(models: list[tuple[str, str]], samplers: list[str], steps: list[int], out: Path,
          judge: Path, num_samples: int, seed: int, options: dict | None = None) -> dict:
    from dslm.evaluate.sweep import SweepConfig, run_sweep

    cfg = SweepConfig(models=models, samplers=samplers, steps=steps, out=str(out),
                      num_samples=num_samples, seed=seed, judge=str(judge), device="cpu",
                      sampler_options=options or {})
    return run_sweep(cfg, progress=False)


def continuous_end_option() -> str:
    """The ``dsl-continuous`` option that ends the SNR grid: ``snr_end`` when the sampler
    has it, else ``snr_final`` (the grid's last point, where it also decodes)."""
    from dslm.sampling.registry import sampler_options

    fields = {f.name for f in dataclasses.fields(sampler_options("dsl-continuous"))}
    return "snr_end" if "snr_end" in fields else "snr_final"


# ---------------------------------------------------------------- the table


def _mean_sd(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _cell(values: list[float], digits: int) -> str:
    m, s = _mean_sd(values)
    return "-" if math.isnan(m) else f"{m:.{digits}f} ± {s:.{digits}f}"


def _diff_cell(values: list[float], base: list[float], digits: int) -> str:
    """Paired difference to the default (same seed), mean ± std over seeds."""
    pairs = [v - b for v, b in zip(values, base) if v is not None and b is not None]
    if not pairs:
        return "-"
    m, s = _mean_sd(pairs)
    return f"{m:+.{digits}f} ± {s:.{digits}f}"


def markdown(doc: dict, args) -> str:
    seeds = doc["settings"]["seeds"]
    runs = doc["runs"]
    lines = ["| variant | what it flips | CE ROAR | Δ vs default | CE log-normal | Δ vs default |",
             "|---|---|---|---|---|---|"]

    def per_seed(variant, *keys):
        return [(runs.get(variant, {}).get(str(s), {}) or {}).get("val", {}).get(keys[0])
                for s in seeds]

    base_roar, base_ln = per_seed("default", "ce_roar"), per_seed("default", "ce_lognormal")
    for name, (what, _) in VARIANTS.items():
        roar, ln = per_seed(name, "ce_roar"), per_seed(name, "ce_lognormal")
        if all(v is None for v in roar):
            continue
        lines.append(f"| {name} | {what} | {_cell(roar, 3)} | "
                     f"{'' if name == 'default' else _diff_cell(roar, base_roar, 3)} | "
                     f"{_cell(ln, 3)} | {'' if name == 'default' else _diff_cell(ln, base_ln, 3)} |")
    text = ["## Validation cross-entropy (nats, non-revealed tokens)", "",
            f"Mean ± std over seeds {seeds}; Δ = paired difference to `default` (same seed), "
            "mean ± std. Lower is better.", "", *lines, ""]
    text += ["## Sampling (gen PPL under the tiny AR judge / unigram entropy in nats / MAUVE)", "",
             f"{doc['settings']['num_samples']} samples per point; mean ± std over seeds.", ""]
    header = "| variant | sampler | T | gen PPL | Δ gen PPL vs default | entropy | MAUVE |"
    text += [header, "|---|---|---|---|---|---|---|"]
    for name in VARIANTS:
        for sampler in ("dsl-mdlm", "dsl-remdm-loop"):
            for t in doc["settings"]["steps"]:
                def metric(variant, key):
                    return [((runs.get(variant, {}).get(str(s), {}) or {}).get("sweep", {})
                             .get(f"{sampler}|{t}", {}) or {}).get(key) for s in seeds]
                ppl = metric(name, "gen_ppl")
                if all(v is None for v in ppl):
                    continue
                d = "" if name == "default" else _diff_cell(ppl, metric("default", "gen_ppl"), 0)
                text.append(f"| {name} | {sampler} | {t} | {_cell(ppl, 0)} | {d} | "
                            f"{_cell(metric(name, 'entropy'), 2)} | {_cell(metric(name, 'mauve'), 3)} |")
    cont = doc.get("continuous", {})
    if cont:
        text += ["", "## dsl-continuous on the default fine-tune: where the SNR grid ends", "",
                 "| grid end | T | gen PPL | entropy | MAUVE |", "|---|---|---|---|---|"]
        for end, per in cont.items():
            for t in doc["settings"]["steps"]:
                vals = [(per.get(str(s), {}) or {}).get(str(t), {}) for s in seeds]
                text.append(f"| {end} | {t} | {_cell([v.get('gen_ppl') for v in vals], 0)} | "
                            f"{_cell([v.get('entropy') for v in vals], 2)} | "
                            f"{_cell([v.get('mauve') for v in vals], 3)} |")
    return "\n".join(text) + "\n"


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/ablation")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--mdlm", default="", help="a tiny MDLM run to reuse (default: train one)")
    ap.add_argument("--judge", default="", help="a tiny AR run to reuse (default: train one)")
    ap.add_argument("--mdlm-steps", type=int, default=600)
    ap.add_argument("--ar-steps", type=int, default=400)
    ap.add_argument("--finetune-steps", type=int, default=100)
    ap.add_argument("--val-blocks", type=int, default=64)
    ap.add_argument("--num-samples", type=int, default=32)
    ap.add_argument("--steps", default="8,16,32")
    ap.add_argument("--no-sweep", action="store_true", help="validation CE only")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    steps = [int(t) for t in args.steps.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    res = Results(out / "ablation.json")
    res.put({"seeds": seeds, "steps": steps, "num_samples": args.num_samples,
             "finetune_steps": args.finetune_steps, "mdlm_steps": args.mdlm_steps,
             "ar_steps": args.ar_steps, "val_blocks": args.val_blocks,
             "command": " ".join(sys.argv)}, "settings")
    start = time.perf_counter()

    mdlm = Path(args.mdlm) if args.mdlm else train_base(
        "mdlm", out / "mdlm", args.mdlm_steps, ["train.lr_schedule=constant"])
    judge = Path(args.judge) if args.judge else train_base("ar", out / "ar", args.ar_steps, [])
    log(f"MDLM start {mdlm}, judge {judge}")

    for seed in seeds:
        for name in variants:
            run = out / "runs" / name / f"seed{seed}"
            if res.get("runs", name, str(seed), "val") is None:
                t0 = time.perf_counter()
                finetune(mdlm, run, args.finetune_steps, seed, VARIANTS[name][1])
                val = validation_ce(run, args.val_blocks, seed=1234)
                res.put({**val, "train_seconds": round(time.perf_counter() - t0, 1)},
                        "runs", name, str(seed), "val")
                log(f"{name} seed {seed}: CE roar {val['ce_roar']:.4f}, lognormal "
                    f"{val['ce_lognormal']:.4f}")
        if args.no_sweep:
            continue
        models = [(name, str(out / "runs" / name / f"seed{seed}")) for name in variants]
        doc = sweep(models, ["dsl-mdlm", "dsl-remdm-loop"], steps, out / "sweeps" / f"seed{seed}",
                    judge, args.num_samples, seed)
        for rec in doc["points"].values():
            res.put({k: rec.get(k) for k in ("gen_ppl", "entropy", "mauve", "nfe")},
                    "runs", rec["model"], str(seed), "sweep", f"{rec['sampler']}|{rec['steps']}")
        if "default" in variants:
            option = continuous_end_option()
            for label, end in (("snr_max", 0.0), ("5", 5.0)):
                opts = {"dsl-continuous": {option: end}} if end else {}
                d = sweep([("default", models[variants.index("default")][1])], ["dsl-continuous"],
                          steps, out / "sweeps" / f"seed{seed}-continuous-{label}", judge,
                          args.num_samples, seed, opts)
                for rec in d["points"].values():
                    res.put({k: rec.get(k) for k in ("gen_ppl", "entropy", "mauve", "nfe")},
                            "continuous", f"{option}={label}", str(seed), str(rec["steps"]))
        log(f"seed {seed} swept")
        (out / "ablation.md").write_text(markdown(res.doc, args))
    res.put(round(time.perf_counter() - start, 1), "last_run_seconds")
    (out / "ablation.md").write_text(markdown(res.doc, args))
    log(f"wrote {out / 'ablation.json'} and {out / 'ablation.md'}")


if __name__ == "__main__":
    main()
