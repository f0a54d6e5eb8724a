"""Run every benchmark in this folder, one after the other (``make bench``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = (
    "bench_speed.py",
    "bench_early_exit.py",
    "bench_budgeted_sweep.py",
    "bench_onnx.py",
    "bench_int8.py",
    "bench_risk.py",
    "bench_latency.py",
    "bench_online.py",
)


def main() -> int:
    here = Path(__file__).resolve().parent
    for script in SCRIPTS:
        print(f"\n=== {script} ===", flush=True)
        code = subprocess.call([sys.executable, str(here / script), *sys.argv[1:]])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
