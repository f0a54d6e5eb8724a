"""Run every benchmark in this folder, one after the other (``make bench``).

``bench_stream.py`` needs a trained demo run: it runs on ``runs/demo`` when ``make demo`` has
written it, and is skipped (with a note) otherwise.
"""

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
    "bench_overhead.py",
    "bench_stream.py",
)
DEMO_RUN = Path("runs/demo")


def main() -> int:
    here = Path(__file__).resolve().parent
    for script in SCRIPTS:
        print(f"\n=== {script} ===", flush=True)
        extra: list[str] = []
        if script == "bench_stream.py":
            if not (DEMO_RUN / "policies.json").is_file():
                print(f"skipped: no trained demo run in {DEMO_RUN} (run make demo first)")
                continue
            extra = ["--run", str(DEMO_RUN)]
        code = subprocess.call([sys.executable, str(here / script), *extra, *sys.argv[1:]])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
