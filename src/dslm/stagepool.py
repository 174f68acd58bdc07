"""Run dependent stages on worker processes: the demo's scheduler.

A :class:`Stage` is a picklable call ``fn(*args)`` plus the names of the stages it
needs. With ``workers == 1`` every stage runs in this process, one after the other,
with its progress bars. With more, up to ``workers`` stages run at once, each in a
fresh process (``spawn``) limited to ``threads`` torch/BLAS threads, its output
(Python's and native libraries' alike) going to ``<log_dir>/<stage>.log``. A stage
starts as soon as every stage it needs has finished; among the ready ones the earliest
in the list goes first (list the longest chain first). Each stage measures its own
wall and CPU seconds (user + system of its process), which the caller records.

Many small CPU stages are faster as single-threaded processes side by side than as
one process with several threads (tiny GEMMs do not scale across threads), and each
stage stays deterministic: its result depends on its seed and thread count, not on
what runs beside it.

A failed stage stops the pool: no new stage starts, the running ones finish (their
results are kept: the demo resumes them), and :class:`StageFailed` names the stage,
its last error line and its log. If this process is interrupted (Ctrl-C, or SIGTERM
from a job scheduler or ``kill``), the running stages' processes are terminated with
it instead of running on as orphans; what they had written atomically stays, and the
demo resumes from it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from dslm.errors import DSLMError


class StageFailed(DSLMError):
    """A stage raised; the message names it, its last error line and its log."""


@dataclass(frozen=True)
class Stage:
    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finished:
    """What one stage returned and what it cost (its own process's CPU seconds)."""

    name: str
    result: Any
    wall: float
    cpu: float


def check_graph(stages: Sequence[Stage], done: set[str] = frozenset()) -> None:
    """Unique names; every need is a stage of the list (or already ``done``); no cycle."""
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DSLMError(f"stage '{dup}' is listed twice")
    known = set(names) | set(done)
    for s in stages:
        missing = [n for n in s.needs if n not in known]
        if missing:
            raise DSLMError(f"stage '{s.name}' needs unknown stage '{missing[0]}'")
    ready, left = set(done), list(stages)
    while left:
        runnable = [s for s in left if set(s.needs) <= ready]
        if not runnable:
            raise DSLMError(f"stages {', '.join(s.name for s in left)} need each other (a cycle)")
        ready |= {s.name for s in runnable}
        left = [s for s in left if s.name not in ready]


def _timed(fn: Callable, args: tuple) -> tuple[Any, float, float]:
    from dslm.provenance import cpu_seconds

    start, cpu = time.perf_counter(), cpu_seconds()
    result = fn(*args)
    return result, time.perf_counter() - start, cpu_seconds() - cpu


@contextlib.contextmanager
def _output_to(f):
    """Everything this process writes to stdout / stderr goes to the open file ``f``: Python's
    streams and file descriptors 1 and 2, so that native libraries' prints (faiss's k-means
    warnings in MAUVE, OpenMP, C++ logs) land in the stage's log too, not on the terminal."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = {}
    for fd in (1, 2):
        try:
            saved[fd] = os.dup(fd)
        except OSError:                          # closed by whoever started us
            saved[fd] = None
    try:
        for fd in saved:
            os.dup2(f.fileno(), fd)
        with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            yield
    finally:
        with contextlib.suppress(Exception):
            f.flush()
            import ctypes

            ctypes.CDLL(None).fflush(None)       # C stdio buffers, before fds 1, 2 move back
        for fd, old in saved.items():
            if old is None:
                os.close(fd)
            else:
                os.dup2(old, fd)
                os.close(old)


def _in_child(fn: Callable, args: tuple, log: str, threads: int) -> tuple[Any, float, float]:
    """One stage in a worker process: ``threads`` threads, all output to ``log``."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    with open(log, "a", encoding="utf-8", buffering=1) as f, _output_to(f):
        import torch

        torch.set_num_threads(threads)
        try:
            return _timed(fn, args)
        except BaseException:
            traceback.print_exc(file=f)
            raise


def _last_error_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines()
                 if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def run_stages(stages: Sequence[Stage], workers: int, log_dir: str | Path, threads: int = 1,
               on_start: Callable[[Stage], None] | None = None,
               on_done: Callable[[Finished], None] | None = None) -> dict[str, Finished]:
    """Run ``stages`` in dependency order on ``workers`` processes (1: in this one);
    ``on_start`` / ``on_done`` are called here, in this process, for each stage."""
    check_graph(stages)
    on_start = on_start or (lambda s: None)
    on_done = on_done or (lambda f: None)
    finished: dict[str, Finished] = {}
    if workers <= 1:
        for s in stages:
            on_start(s)
            result, wall, cpu = _timed(s.fn, s.args)
            finished[s.name] = Finished(s.name, result, wall, cpu)
            on_done(finished[s.name])
        return finished
    return _run_pool(stages, workers, Path(log_dir), threads, on_start, on_done, finished)


def _run_pool(stages, workers, log_dir: Path, threads, on_start, on_done, finished):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    log_dir.mkdir(parents=True, exist_ok=True)
    pending, running = list(stages), {}
    # spawn: a clean interpreter per stage (no forked torch thread pools); one task each
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               max_tasks_per_child=1)
    try:
        with _sigterm_raises():
            failure = _schedule(pool, pending, running, finished, workers, log_dir, threads,
                                on_start, on_done)
    except BaseException:                  # interrupted: take the stage processes down too
        _terminate_workers(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True, cancel_futures=True)
    if failure is not None:
        raise failure
    return finished


class Interrupted(KeyboardInterrupt):
    """SIGTERM reached the demo's process (handled like Ctrl-C)."""


@contextlib.contextmanager
def _sigterm_raises():
    """While the pool runs, SIGTERM raises :class:`Interrupted` here (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _terminate_workers(pool) -> None:
    """SIGTERM every live worker process of ``pool`` (concurrent.futures keeps them in
    ``_processes``; Python 3.14's ``terminate_workers`` is not in 3.11)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            if proc.is_alive():
                proc.terminate()


def _schedule(pool, pending, running, finished, workers, log_dir, threads, on_start, on_done):
    """Submit ready stages and collect finished ones until none is left (or one failed:
    then only the running ones are awaited); returns the first :class:`StageFailed` or None."""
    from concurrent.futures import FIRST_COMPLETED, wait

    failure = None
    while running or (pending and failure is None):
        while failure is None and len(running) < workers:
            ready = next((s for s in pending if all(n in finished for n in s.needs)), None)
            if ready is None:
                break
            pending.remove(ready)
            on_start(ready)
            log = log_dir / f"{ready.name}.log"
            running[pool.submit(_in_child, ready.fn, ready.args, str(log), threads)] = (ready, log)
        if not running:
            break
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for fut in done:
            stage, log = running.pop(fut)
            try:
                result, wall, cpu = fut.result()
            except Exception as exc:       # noqa: BLE001 - reported with the stage's log
                last = _last_error_line(log) or f"{type(exc).__name__}: {exc}"
                failure = failure or StageFailed(
                    f"demo stage '{stage.name}' failed: {last} (log: {log})")
                if running:
                    print(f"waiting for the running stages to finish: "
                          f"{', '.join(s.name for s, _ in running.values())}", file=sys.stderr)
                continue
            finished[stage.name] = Finished(stage.name, result, wall, cpu)
            on_done(finished[stage.name])
    return failure
