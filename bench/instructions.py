"""`python -m bench instructions`: the supervisor workload counted in CPU instructions.

CPU time on this shared machine drifts by a factor of two from hour to hour; the number of
instructions a workload executes does not. Each row runs the workload under valgrind's
callgrind (every thread counted) twice, with a small and a large number of runs, and divides
the difference by the extra model calls: interpreter start-up and imports cancel out. Slow
(several minutes a row) and needs `valgrind`; use it to compare two versions of the code, and
the CPU rows of `python -m bench` for what a call costs in time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One process of the workload: `batches` rounds of `concurrency` runs at once, journal or not.
_WORKLOAD = """
import asyncio, os, sys, tempfile
from bench.supervisor_runs import BenchModel, supervisor

async def main(batches: int, concurrency: int, path: str | None) -> None:
    model = BenchModel(0.0)
    sup = supervisor(model, path)
    for _ in range(batches):
        await asyncio.gather(*(sup.run("check every desk") for _ in range(concurrency)))
    await sup.aclose()

folder = tempfile.mkdtemp()
path = os.path.join(folder, "runs.db") if sys.argv[3] == "db" else None
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), path))
"""


def _instructions(batches: int, concurrency: int, journal: bool) -> int:
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "workload.py"
        script.write_text(_WORKLOAD)
        command = [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(script),
            str(batches),
            str(concurrency),
            "db" if journal else "none",
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"the workload failed under valgrind:\n{done.stderr[-3000:]}")
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_model_call(concurrency: int, journal: bool, calls: int = 2000) -> float:
    """Instructions per model call, `concurrency` runs at once (10 model calls a run)."""
    extra = max(1, calls // (concurrency * 10))
    base = _instructions(1, concurrency, journal)
    more = _instructions(1 + extra, concurrency, journal)
    return (more - base) / (extra * concurrency * 10)


def rows() -> list[tuple[str, float | None, float]]:
    """The table's rows (no goals: goals are in milliseconds, these are instructions)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("python -m bench instructions needs valgrind (apt-get install valgrind)")
    alone = per_model_call(1, journal=False)
    alone_journal = per_model_call(1, journal=True)
    many = per_model_call(300, journal=False, calls=3000)
    plain_50 = per_model_call(50, journal=False)
    journal_50 = per_model_call(50, journal=True)
    return [
        ("supervisor run, one at a time (instructions/model call)", None, alone),
        ("supervisor run, 300 at once (instructions/model call)", None, many),
        ("  50 at once, no journal (instructions/model call)", None, plain_50),
        ("  50 at once, SQLite journal (instructions/model call)", None, journal_50),
        ("  added by the journal (instructions/model call)", None, journal_50 - plain_50),
        ("  one at a time, SQLite journal (instructions/model call)", None, alone_journal),
        ("  added by the journal, one at a time (instructions/model call)", None, alone_journal - alone),
    ]
