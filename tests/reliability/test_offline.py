"""Class 10: an unreachable hub is detected within seconds, with advice on working
offline; doctor tests reachability for real."""

import time

import pytest

from .conftest import fails


@pytest.fixture
def unreachable_hub(monkeypatch):
    """The hub behind a black-hole address (TEST-NET-1), with a 1 s probe, online mode."""
    import dslm.hubnet as hubnet

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://192.0.2.1:9")
    monkeypatch.setenv("DSLM_HUB_TIMEOUT", "1")
    monkeypatch.setattr(hubnet, "_RESULT", {})
    yield
    import os

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[var] = "1"                         # go_offline() may have changed them


def test_hub_commands_fail_fast_with_offline_advice(world, tmp_path, capsys, unreachable_hub):
    began = time.perf_counter()
    fails(capsys, ["eval", "--samples", world["samples"], "--judge", "someone/some-judge",
                   "--reference", world["ref"], "--out", tmp_path / "m.json"],
          "unreachable", "HF_HUB_OFFLINE=1")
    fails(capsys, ["export", "--ckpt", "someone/some-model", "--out", tmp_path / "x"],
          "unreachable", "local folders")
    fails(capsys, ["sweep", "--ckpt", "m=someone/mdlm", "--seq-len", 16, "--samplers", "mdlm",
                   "--steps", 2, "--judge", world["ar"], "--reference", world["ref"],
                   "--out", tmp_path / "sw"], "unreachable")
    assert time.perf_counter() - began < 20


def test_doctor_tests_the_hub(capsys, unreachable_hub):
    from dslm.cli import main

    began = time.perf_counter()
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "hub: unreachable" in out and "HF_HUB_OFFLINE=1" in out
    assert time.perf_counter() - began < 15


def test_doctor_with_offline_mode_set(capsys, monkeypatch):
    from dslm.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["doctor"]) == 0
    assert "hub: offline" in capsys.readouterr().out
