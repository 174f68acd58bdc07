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


def _native_print(text: str) -> int:
    """Write to file descriptors 1 and 2 directly, as a C library does (faiss, OpenMP)."""
    os.write(1, f"fd1 {text}\n".encode())
    return os.write(2, f"fd2 {text}\n".encode())


def test_a_stage_s_native_output_goes_to_its_log_not_the_terminal(tmp_path, capfd):
    done = run_stages([Stage("native", _native_print, ("hello",))], 2, tmp_path / "logs")
    assert done["native"].result > 0
    log = (tmp_path / "logs" / "native.log").read_text()
    assert "fd1 hello" in log and "fd2 hello" in log
    out, err = capfd.readouterr()
    assert "hello" not in out and "hello" not in err


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(c) for c in (task / "children").read_text().split()]
    return kids


def _gone(pid: int) -> bool:
    """Exited (or a zombie nobody reaped yet: it runs nothing)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status or "\nState:\tX" in status


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads child pids from /proc (Linux)")
def test_sigterm_to_the_parent_takes_the_stage_processes_down(tmp_path):
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    logs = tmp_path / "logs"
    script = tmp_path / "pool.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from dslm.stagepool import Stage, run_stages
        if __name__ == "__main__":          # spawn re-imports this file in each worker
            run_stages([Stage("a", time.sleep, (300,)), Stage("b", time.sleep, (300,))], 2, {str(logs)!r})
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ((logs / "a.log").is_file() and (logs / "b.log").is_file()):
            assert proc.poll() is None and time.monotonic() < deadline, "the stages never started"
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert len(workers) >= 2
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and "Interrupted" in err
        deadline = time.monotonic() + 30
        while not all(_gone(pid) for pid in workers):
            assert time.monotonic() < deadline, "stage processes outlived the demo's process"
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
