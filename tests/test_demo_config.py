"""The demo's settings as files: configs/demo.yaml, --config FILE, --quick, flags on top."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dslm.cli import build_parser
from dslm.config import merge, read_yaml
from dslm.demo import _run_config, load_demo_config
from dslm.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _cfg(argv):
    """The DemoConfig that ``dslm demo ARGV`` would run (the command's own loading path)."""
    args = build_parser().parse_args(["demo", *argv])
    flags = {k: getattr(args, k) for k in ("out", "configs", "corpus") if getattr(args, k) is not None}
    return load_demo_config(args.config, args.overrides, quick=args.quick, flags=flags)


def test_demo_reads_configs_demo_yaml_and_quick_puts_its_file_on_top():
    file = read_yaml(CONFIGS / "demo.yaml")
    cfg = _cfg([])
    assert (cfg.out, cfg.mdlm_steps, cfg.samplers, cfg.runs["dsl"]["file"]) == \
        (file["out"], file["mdlm_steps"], file["samplers"], "tiny-dsl.yaml")
    quick = _cfg(["--quick", "--out", "x", "mdlm_steps=7"])
    small = read_yaml(CONFIGS / "demo-quick.yaml")
    assert (quick.extra_steps, quick.samplers) == (small["extra_steps"], small["samplers"])
    assert (quick.out, quick.mdlm_steps, quick.judge_tokens) == ("x", 7, file["judge_tokens"])


def test_config_file_then_flags_and_run_values_merge_key_by_key(tmp_path):
    other = tmp_path / "mine.yaml"
    values = merge(read_yaml(CONFIGS / "demo.yaml"), {"extra_steps": 5, "runs": {"ar": {"train": {"lr": 0.01}}}})
    other.write_text(yaml.safe_dump(values))
    cfg = _cfg(["--config", str(other), f"--configs={CONFIGS}", "runs.dsl.train.lr=2e-3"])
    assert cfg.extra_steps == 5
    dsl = _run_config(cfg, "dsl", tmp_path / "d", 100, 3)
    control = _run_config(cfg, "control", tmp_path / "c", 100, 3)
    # the override changed one key of one role; the file's other keys and roles stay
    assert (dsl.train.lr, dsl.train.lr_schedule, dsl.train.warmup_steps) == (2e-3, "cosine", 20)
    assert (control.train.lr, control.model.kind) == (1e-3, "mdlm")
    assert _run_config(cfg, "ar", tmp_path / "a", 100, 3).train.lr == 0.01
    assert (dsl.train.steps, dsl.train.seed, dsl.train.checkpoint_every) == (100, 3, 50)


@pytest.mark.parametrize("override,match", [
    (["runs.judge.file=tiny-ar.yaml"], "unknown role 'judge'"),
    (["runs.dsl.file="], "demo.runs.dsl"),
    (["runs.dsl.train.lrr=1"], "'runs.dsl.train.lrr'.*did you mean 'lr'"),
])
def test_bad_runs_are_config_errors(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        _run_config(load_demo_config(None, override), "dsl", tmp_path, 10, 0)


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_demo_config(tmp_path / "nope.yaml")


def test_a_changed_role_value_changes_its_stages_fingerprint_only():
    from dslm.demoguard import stage_parts
    from dslm.provenance import fingerprint

    prints = {k: fingerprint(v) for k, v in stage_parts(_cfg([f"--configs={CONFIGS}"])).items()}
    lr = {k: fingerprint(v) for k, v in
          stage_parts(_cfg([f"--configs={CONFIGS}", "runs.dsl.train.lr=2e-3"])).items()}
    ctl = {k: fingerprint(v) for k, v in
           stage_parts(_cfg([f"--configs={CONFIGS}", "runs.control.train.warmup_steps=7"])).items()}
    assert [k for k in prints if prints[k] != lr[k]] == ["dsl"]
    assert [k for k in prints if prints[k] != ctl[k]] == ["mdlm-control"]
