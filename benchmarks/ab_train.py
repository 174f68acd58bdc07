"""A/B training throughput of two source trees on this machine, alternating runs.

    python benchmarks/ab_train.py OLD_SRC NEW_SRC [--reps 3] [bench_train options...]

Runs ``bench_train.py`` with ``PYTHONPATH=OLD_SRC`` and ``PYTHONPATH=NEW_SRC`` in turn,
``--reps`` times each (alternating, so slow phases of a shared machine hit both), and
prints the median tokens/s per kind and the ratio new / old. The old tree needs a
``dslm/perf.py`` with ``square_peak`` / ``spec_peak`` / ``compile_enabled`` (copy today's
file there: it only measures; it imports ``dslm.errors.first_line``, so add that
function to an old ``errors.py`` that lacks it). Each tree trains as its own
``dslm.train`` does (its losses, its ``build_optimizer``, its CPU allocator setting if
it has one). Environment switches (``DSLM_TRAIN_ROWS=0``, ``DSLM_CPU_MALLOC=0``) reach
both runs; a tree without them ignores them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 2:
        raise SystemExit(__doc__)
    old, new, rest = args[0], args[1], args[2:]
    reps = 3
    if "--reps" in rest:
        i = rest.index("--reps")
        reps = int(rest[i + 1])
        rest = rest[:i] + rest[i + 2:]
    speeds: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    cpu: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            for label, src in (("old", old), ("new", new)):
                out = Path(tmp) / f"{label}-{rep}.json"
                env = {**os.environ, "PYTHONPATH": src}
                subprocess.run([sys.executable, str(HERE / "bench_train.py"), *rest, "--out", str(out)],
                               check=True, env=env, stdout=subprocess.DEVNULL)
                for run in json.loads(out.read_text())["runs"]:
                    key = f"{run['kind']} b{run['batch']}"
                    speeds[label].setdefault(key, []).append(run["tokens_per_s"])
                    cpu[label].setdefault(key, []).append(run.get("tokens_per_cpu_s", float("nan")))
                print(label, rep, {k: round(v[-1]) for k, v in speeds[label].items()}, flush=True)
    print(f"medians of {reps} alternating runs; tokens per wall second, and per CPU second of the "
          "benchmark process (less sensitive to other jobs on a shared machine)")
    print(f"{'run':>10} {'old tok/s':>10} {'new tok/s':>10} {'new/old':>8} {'old tok/cpu-s':>14} "
          f"{'new tok/cpu-s':>14} {'new/old':>8}")
    for key in speeds["new"]:
        o, n = statistics.median(speeds["old"][key]), statistics.median(speeds["new"][key])
        oc, nc = statistics.median(cpu["old"][key]), statistics.median(cpu["new"][key])
        print(f"{key:>10} {o:10,.0f} {n:10,.0f} {n / o:8.2f} {oc:14,.0f} {nc:14,.0f} {nc / oc:8.2f}")
        print(f"{'':>10} raw old {[round(v) for v in speeds['old'][key]]} new "
              f"{[round(v) for v in speeds['new'][key]]}")


if __name__ == "__main__":
    main()
