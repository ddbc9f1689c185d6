"""The CLI in a child process, with that process's own peak memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PEAK_RUN_SCRIPT = """
import sys
from pathlib import Path
from reenact import pipeline
from reenact.report import peak_memory_bytes
from reenact_cli.main import run

peak_file, reset_after_context = Path(sys.argv[1]), sys.argv[2] == "1"
if reset_after_context:
    make_context = pipeline.make_context

    def reset_peak_after(**kwargs):
        context = make_context(**kwargs)
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM
        return context

    pipeline.make_context = reset_peak_after
code = run(sys.argv[3:])
peak_file.write_text(str(peak_memory_bytes()))
sys.exit(code)
"""


def start(
    args: list[str], *, peak_file: Path | None = None, reset_after_context: bool = False
) -> subprocess.Popen[str]:
    """The CLI in a child process. With `peak_file`, its peak resident memory (bytes) is written there;
    with `reset_after_context` the peak counts from the moment the run's context (generator, loss
    networks) exists, so what is the same at any clip length does not hide the data path."""
    command = ["-m", "reenact_cli.main"]
    if peak_file is not None:
        command = ["-c", PEAK_RUN_SCRIPT, str(peak_file), "1" if reset_after_context else "0"]
    return subprocess.Popen(
        [sys.executable, *command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def peak_bytes(peak_file: Path) -> int:
    return int(peak_file.read_text())
