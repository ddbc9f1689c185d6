"""The CLI in a child process, with that process's own peak memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PEAK_RUN_SCRIPT = """
import sys
from reenact_cli.main import run
code = run(sys.argv[2:])
status = open("/proc/self/status").read().splitlines()
with open(sys.argv[1], "w") as peak:  # VmHWM: this process's own peak, not its parent's before exec
    peak.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
sys.exit(code)
"""
KIB = 1024


def start(args: list[str], *, peak_file: Path | None = None) -> subprocess.Popen[str]:
    """The CLI in a child process; with `peak_file`, its peak resident memory (kB) is written there."""
    command = ["-m", "reenact_cli.main"] if peak_file is None else ["-c", PEAK_RUN_SCRIPT, str(peak_file)]
    return subprocess.Popen(
        [sys.executable, *command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def peak_bytes(peak_file: Path) -> int:
    return int(peak_file.read_text()) * KIB
