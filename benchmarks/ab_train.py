"""A/B training throughput of two source trees on this machine, alternating runs.

    python benchmarks/ab_train.py OLD_SRC NEW_SRC [--reps 3] [bench_train options...]

Runs ``bench_train.py`` with ``PYTHONPATH=OLD_SRC`` and ``PYTHONPATH=NEW_SRC`` in turn,
``--reps`` times each (alternating, so slow phases of a shared machine hit both), and
prints the median tokens/s per kind and the ratio new / old. The old tree needs a
``dslm/perf.py`` with ``square_peak`` / ``spec_peak`` / ``compile_enabled`` (copy today's
file there: it only measures). Each tree trains as its own ``dslm.train`` does
(its losses, its ``build_optimizer``).
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
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            for label, src in (("old", old), ("new", new)):
                out = Path(tmp) / f"{label}-{rep}.json"
                env = {**os.environ, "PYTHONPATH": src}
                subprocess.run([sys.executable, str(HERE / "bench_train.py"), *rest, "--out", str(out)],
                               check=True, env=env, stdout=subprocess.DEVNULL)
                for run in json.loads(out.read_text())["runs"]:
                    speeds[label].setdefault(f"{run['kind']} b{run['batch']}", []).append(run["tokens_per_s"])
                print(label, rep, {k: round(v[-1]) for k, v in speeds[label].items()}, flush=True)
    print(f"{'run':>10} {'old tok/s':>10} {'new tok/s':>10} {'new/old':>8}   (medians of {reps})")
    for key in speeds["new"]:
        o, n = statistics.median(speeds["old"][key]), statistics.median(speeds["new"][key])
        print(f"{key:>10} {o:10,.0f} {n:10,.0f} {n / o:8.2f}")


if __name__ == "__main__":
    main()
