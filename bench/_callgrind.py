"""Shared by the ``callgrind_*.py`` scripts: instructions of one replay under callgrind.

Timings on the shared 2-core machine move by 10-50 % between runs; instruction counts do
not. Each script runs itself with ``--run ...`` (one replay) under
``valgrind --tool=callgrind`` and reads the total it reports; ``PYTHONHASHSEED=0`` keeps
dict layouts, and so the counts, the same from run to run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys


def instructions(script: str, args: list[str], pythonpath: str | None = None) -> int:
    """Instructions callgrind counts for ``python script --run *args``.

    Args:
        script: The calling script's path (``__file__``); it must handle ``--run``.
        args: Its arguments after ``--run``.
        pythonpath: ``PYTHONPATH`` for the run (another tree to compare), if any.

    Raises:
        subprocess.CalledProcessError: valgrind or the replay failed.
        RuntimeError: no total in valgrind's report.
    """
    env = dict(os.environ, PYTHONHASHSEED="0")  # same dict layouts in every run
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            script,
            "--run",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stderr
    m = re.search(r"Collected : (\d+)", out)
    if m is None:
        raise RuntimeError(f"no callgrind total in: {out[-500:]}")
    return int(m.group(1))
