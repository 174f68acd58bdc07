"""Class 6: doctor reports what each command really imports, and a missing optional
package stops a command before any work with one line naming the pip extra."""

import sys

import pytest

from .conftest import TINY_RUN, fails


def _hide(monkeypatch, *names):
    """Make ``import name`` fail in this process, as if the package were not installed."""
    for name in names:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, mod)
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("package,broken", [
    ("matplotlib", {"sweep", "demo", "trace", "analyze"}),
    ("datasets", {"train", "finetune", "sweep", "demo"}),
    ("tokenizers", {"train", "finetune", "sample", "eval", "sweep", "demo", "analyze"}),
    ("mauve", {"eval", "sweep", "demo"}),
])
def test_doctor_names_the_commands_a_missing_package_breaks(monkeypatch, capsys, package, broken):
    from dslm.cli import main
    from dslm.commands.doctor import collect

    _hide(monkeypatch, package)
    report = collect(test_hub=False)
    assert {c for c, bad in report["commands"].items() if package in bad} == broken
    assert main(["doctor", "--offline"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("  dslm ")}
    for cmd, line in lines.items():
        assert (package in line) == (cmd in broken), line
        assert ("ready" in line) == (cmd not in broken), line
    assert "dslm[full]" in out


def test_missing_packages_stop_commands_before_work(world, tmp_path, capsys, monkeypatch):
    import dslm.models.checkpoint as ck
    import dslm.train.loop as loop

    def boom(*a, **k):
        raise AssertionError("work started although a needed package is missing")

    monkeypatch.setattr(loop, "_Training", boom)
    monkeypatch.setattr(ck, "read_weights", boom)
    _hide(monkeypatch, "matplotlib")
    fails(capsys, ["sweep", "--ckpt", f"m={world['mdlm']}", "--samplers", "mdlm", "--steps", 2,
                   "--num-samples", 4, "--judge", world["ar"], "--reference", world["ref"],
                   "--out", tmp_path / "sw"], "matplotlib", "pip install 'dslm[full]'")
    assert not (tmp_path / "sw" / "sweep.json").exists()
    fails(capsys, ["demo", "--out", tmp_path / "demo", "--quick"], "matplotlib", "dslm[full]")
    monkeypatch.delitem(sys.modules, "matplotlib")
    _hide(monkeypatch, "datasets")
    fails(capsys, ["train", "--out", tmp_path / "r", *TINY_RUN, "train.steps=1"], "datasets",
          "dslm[full]")
    _hide(monkeypatch, "mauve")
    fails(capsys, ["eval", "--samples", world["samples"], "--judge", world["ar"], "--reference",
                   world["ref"], "--out", tmp_path / "m.json"], "mauve-text", "--no-mauve")
