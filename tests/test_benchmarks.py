"""The benchmark scripts run (gpu_check.sh smoke mode) and the memory bound holds."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dslm.diffusion.losses import dsl_loss, mdlm_loss
from dslm.diffusion.schedules import ScheduleConfig
from dslm.models import build_model
from dslm.models.config import ModelConfig, preset
from dslm.perf import saved_tensor_bytes, spec_peak

ROOT = Path(__file__).resolve().parents[1]


def _per_sequence_bytes(kind: str, vocab: int = 2051) -> int:
    """Saved-for-backward bytes of one extra sequence: bytes(batch 2) - bytes(batch 1)."""
    cfg = ModelConfig(kind=kind, vocab_size=vocab, seq_len=128, hidden_size=64, n_blocks=2,
                      n_heads=2, cond_dim=32, embed_dim=16)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    counts = []
    for batch in (1, 2):
        x = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len))
        gen = torch.Generator().manual_seed(0)
        loss = (lambda: dsl_loss(model, x, ScheduleConfig(), gen).loss) if kind == "dsl" else \
            (lambda: mdlm_loss(model, x, gen).loss)
        counts.append(saved_tensor_bytes(loss, model))
    return counts[1] - counts[0]


def test_dsl_saved_memory_within_1_3x_of_mdlm_and_flat_in_vocabulary():
    """DSL's activation memory per sequence stays within 1.3x of MDLM's, and neither
    grows with |V|: the converter and the head keep no [B, L, V] tensor for backward
    (a reduced size; benchmarks/bench_memory.py reports the `small` size. Before the
    fused kernels each extra 2048 tokens of vocabulary cost DSL 2 x L x 2048 x 4 bytes)."""
    dsl, mdlm = _per_sequence_bytes("dsl"), _per_sequence_bytes("mdlm")
    assert dsl <= 1.3 * mdlm, (dsl, mdlm)
    one_lv = 128 * 2048 * 4                      # one float32 [L, 2048] tensor
    for kind, small in (("dsl", dsl), ("mdlm", mdlm)):
        grown = _per_sequence_bytes(kind, 2051 + 2048) - small
        assert grown < 0.1 * one_lv, (kind, grown, one_lv)


def test_saved_tensor_bytes_counts_storages_once():
    w = torch.nn.Parameter(torch.randn(8, 8))
    x = torch.randn(4, 8)

    def fn():
        h = x @ w            # saves x (a view of it twice would count once) and w (excluded)
        return (h * h).sum()  # saves h twice: one storage

    module = torch.nn.Module()
    module.w = w
    assert saved_tensor_bytes(fn, module) == x.nbytes + 4 * 8 * 4


def test_spec_peaks():
    assert spec_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert spec_peak("NVIDIA H200") == 989e12
    assert spec_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert spec_peak("NVIDIA H100 PCIe") == 756e12
    assert spec_peak("Some GPU") is None


@pytest.mark.slow
def test_gpu_check_smoke_mode(tmp_path):
    """``gpu_check.sh --smoke`` runs every part's code path at tiny sizes on the CPU."""
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--smoke", str(tmp_path)],
                   check=True, env=env, capture_output=True, timeout=900)
    log = (tmp_path / "gpu_check.log").read_text()
    for part in ("memory", "train_eager", "train_rows", "train_compiled", "train_compiled_model",
                 "sample_eager", "sample_compiled"):
        assert f"=== {part}: exit 0" in log, log[-3000:]
        doc = json.loads((tmp_path / f"{part}.json").read_text())
        rows = doc.get("runs") or doc.get("rows")
        assert rows and not any("error" in r for r in rows), part
    assert "=== profile: exit 0" in log and "### remdm-loop" in log
    train = json.loads((tmp_path / "train_compiled.json").read_text())
    assert train["compile"] and {r["kind"] for r in train["runs"]} == {"dsl", "mdlm", "ar"}
    assert train["compile_scope"] == "blocks"
    whole = json.loads((tmp_path / "train_compiled_model.json").read_text())
    assert whole["compile_scope"] == "model" and [r["kind"] for r in whole["runs"]] == ["dsl"]
    assert json.loads((tmp_path / "train_rows.json").read_text())["train_rows"] == "1"
    assert all(r["mfu_square"] > 0 for r in train["runs"])
    sample = json.loads((tmp_path / "sample_eager.json").read_text())
    assert {r["model"] for r in sample["rows"]} == {"random", "peaked"}


def test_nan_locator_names_the_parameter_with_a_non_finite_gradient():
    """bench_train's locator (benchmarks/_nan_locator.py): given a "compiled" step whose
    gradient of one parameter is NaN, it reruns the batch eagerly and names that
    parameter; the pieces (converter, block 0, head) run and match (eager backend)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _nan_locator import locate

    cfg = preset("micro", kind="dsl", vocab_size=70)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    x = torch.randint(0, 70, (2, 16))
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    loss_fn = lambda m, xb, g: dsl_loss(m, xb, ScheduleConfig(), g)  # noqa: E731
    loss = loss_fn(model, x, gen).loss
    loss.backward()
    from bench_train import _finite_step

    params = list(model.parameters())
    assert _finite_step(loss, params)
    model.backbone.blocks[1].attn_qkv.weight.grad[0, 0] = float("nan")
    assert not _finite_step(loss, params)        # a finite loss with a NaN gradient is caught
    report = locate(model, loss_fn, x, gen, state, torch.tensor(float("nan")), False,
                    torch.device("cpu"), backend="eager")
    assert report["compiled_nonfinite_grads"] == ["backbone.blocks.1.attn_qkv.weight"]
    assert report["eager_loss"] == report["eager_loss"] and not report["eager_nonfinite_modules"]
    assert [p["piece"] for p in report["pieces"]] == [
        "converter (input_embedding)", "block 0", "head features + fused cross-entropy"]
    assert all(p["out_finite"] and p["out_rel_diff"] == 0.0 for p in report["pieces"])
