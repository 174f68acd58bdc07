from dslm.cli import main
from dslm.commands.doctor import collect


def test_doctor_reports_environment(capsys):
    report = collect()
    assert report["torch"] and report["cpu_threads"] >= 1
    assert set(report["commands"]) >= {"train", "sample", "sweep"}
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "dslm sweep" in out


def test_help_lists_existing_commands(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "doctor" in out
