"""Start-up time of CLI commands (issue 17 item 3: `sweeps validate` and `--help` under 0.5 s).

Each call is `python -c 'from sweeps.cli import main; main()' ARGS` in a fresh interpreter run
from inside a source tree (so that tree's code is imported), with bytecode cached (a first call
per tree warms the cache). Wall and CPU (user + sys of the child, `getrusage`) are the best of
`--repeat`; with several `--tree`s the trees are interleaved, twice, so machine load hits them
alike. Usage:

    python -m benchmarks.startup_bench --tree OLD_CHECKOUT --tree . -- validate sweeps/specs/demo.yaml
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CODE = "from sweeps.cli import main; main()"


def timed(tree: Path, args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one CLI call from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", CODE, *args], cwd=tree, env=env, stdout=subprocess.DEVNULL
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup_bench", description=__doc__)
    p.add_argument("--tree", type=Path, action="append", required=True)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("args", nargs="+", help="the CLI's arguments (after --)")
    ns = p.parse_args()
    trees = [t.resolve() for t in ns.tree]
    for tree in trees:
        timed(tree, ns.args)  # writes the bytecode cache
    for _ in range(2):
        for tree in trees:
            runs = [timed(tree, ns.args) for _ in range(ns.repeat)]
            wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
            print(
                f"{tree}: {' '.join(ns.args)}: best of {ns.repeat}: wall {wall:.3f} s, "
                f"cpu {cpu:.3f} s, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
