"""The demo's stage scheduler: dependency order, worker processes, failures."""

import os
from pathlib import Path

import pytest

from dslm.errors import DSLMError
from dslm.stagepool import Stage, StageFailed, check_graph, run_stages


def test_graph_checks_name_the_problem():
    with pytest.raises(DSLMError, match="listed twice"):
        check_graph([Stage("a", print), Stage("a", print)])
    with pytest.raises(DSLMError, match="needs unknown stage 'z'"):
        check_graph([Stage("a", print, needs=("z",))])
    with pytest.raises(DSLMError, match="need each other"):
        check_graph([Stage("a", print, needs=("b",)), Stage("b", print, needs=("a",))])


def test_in_process_runs_in_list_order_and_reports_costs(tmp_path):
    order = []
    stages = [Stage("a", order.append, ("a",)), Stage("b", order.append, ("b",), needs=("a",))]
    done = run_stages(stages, 1, tmp_path, on_start=lambda s: order.append("start " + s.name))
    assert order == ["start a", "a", "start b", "b"]
    assert set(done) == {"a", "b"} and all(f.wall >= 0 and f.cpu >= 0 for f in done.values())


def test_worker_processes_respect_needs_and_return_results(tmp_path):
    f = tmp_path / "made-by-a.txt"
    stages = [Stage("b", Path.read_text, (f,), needs=("a",)),       # listed first, runs second
              Stage("a", Path.write_text, (f, "hello")),
              Stage("pid", os.getpid)]
    started = []
    done = run_stages(stages, 2, tmp_path / "logs", on_start=lambda s: started.append(s.name))
    assert done["b"].result == "hello" and done["a"].result == 5
    assert done["pid"].result != os.getpid()                          # ran in another process
    assert started.index("a") < started.index("b")
    assert (tmp_path / "logs" / "b.log").is_file()


def test_a_failed_stage_names_itself_and_its_log_and_stops_the_rest(tmp_path):
    ran = tmp_path / "ran.txt"
    stages = [Stage("bad", int, ("not a number",)),
              Stage("after", Path.write_text, (ran, "x"), needs=("bad",))]
    with pytest.raises(StageFailed, match=r"demo stage 'bad' failed: ValueError: invalid literal.*bad\.log"):
        run_stages(stages, 2, tmp_path / "logs")
    assert not ran.exists()
