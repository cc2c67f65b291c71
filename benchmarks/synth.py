"""Benchmark of the synthetic cohort generator (bids_amyloid.synth).

Each case runs `bids_amyloid-synth` in a fresh process and reports wall time, CPU time (user +
system, all processes) and the peak resident memory of the largest process (os.wait4).

    python benchmarks/synth.py                   # 6 subjects at 2 mm and at 1 mm
    python benchmarks/synth.py --cases large     # 100 subjects at 1 mm, 2 worker processes
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "tiny-2mm": ["--n-subjects", "6", "--resolution", "2"],
    "tiny-1mm": ["--n-subjects", "6", "--resolution", "1"],
    "large-1mm": ["--n-subjects", "100", "--resolution", "1", "--n-jobs", "2"],
}
GROUPS = {"default": ["tiny-2mm", "tiny-1mm"], "large": ["large-1mm"], "all": list(CASES)}


def run_case(name: str, out: Path, extra: list[str]) -> dict[str, float]:
    cmd = [sys.executable, "-c", "import sys; from bids_amyloid.synth.cli import main; "
           "sys.exit(main(sys.argv[1:]))", str(out), *CASES[name], *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    summary = proc.stdout.read().strip() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed: {summary}")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"  {summary}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024.0, "size_mb": size / 2**20}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="default", choices=list(GROUPS) + list(CASES))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    names = GROUPS.get(args.cases, [args.cases])
    print(f"cpus available: {len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        for name in names:
            print(f"{name}:")
            r = run_case(name, Path(tmp) / name, ["--seed", str(args.seed)])
            print(f"  {name}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB, output {r['size_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
