"""Train (or resume) the face world: reenact's StyleGAN2 on the face crops of tools/build_face_data.py.

    python tools/train_face_world.py --data face-world/data/faces-64.npz --run face-world/run-64 \\
        [--steps 6000] [--batch 16] [--threads 2] [--any-setting VALUE ...]

Every field of `reenact.train.TrainConfig` is an option (`--r1-gamma 0.1`, `--mirror false`,
`--betas 0,0.99`, `--ema-rampup none`), with TrainConfig's default; the resolution is the dataset's.
Run it again with the same folder to resume from its checkpoint (a larger --steps trains on). The run
folder gets checkpoint.pt, log.jsonl and generator.safetensors (the EMA generator: `reenact generate
--generator RUN/generator.safetensors --seeds 0-63 --trunc 0.7 --grid -o samples/`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import typing
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from reenact.errors import ReenactError  # noqa: E402
from reenact.face_data import load_face_dataset  # noqa: E402
from reenact.progress import Progress, ProgressTask  # noqa: E402
from reenact.threads import use_threads  # noqa: E402
from reenact.train import LOG_NAME, TrainConfig, read_log, train  # noqa: E402

REPORT_EVERY_SECONDS = 60.0
"""A progress line at most this often (and at the end)."""


class _LineTask(ProgressTask):
    """Prints `step N/T, S steps/s, ETA, last log line` at most every REPORT_EVERY_SECONDS."""

    def __init__(self, *, total: int | None, initial: int, log: Path) -> None:
        self.total, self.done, self.log = total, initial, log
        self.started, self.start_step, self.shown = time.perf_counter(), initial, time.perf_counter()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.shown >= REPORT_EVERY_SECONDS or self.done == self.total:
            self.shown = now
            rate = (self.done - self.start_step) / max(now - self.started, 1e-9)
            left = ((self.total or self.done) - self.done) / max(rate, 1e-9)
            entries = read_log(self.log)
            last = {k: round(v, 3) for k, v in entries[-1].items()} if entries else {}
            print(
                f"step {self.done}/{self.total}  {rate:.3f} steps/s  {left / 60:.0f} min left  {last}",
                flush=True,
            )


class _LineProgress(Progress):
    def __init__(self, log: Path) -> None:
        self.log = log

    def task(self, name: str, *, total: int | None, unit: str, initial: int = 0) -> ProgressTask:
        return _LineTask(total=total, initial=initial, log=self.log)

    def note(self, line: str) -> None:
        print(line, flush=True)


def _parse(text: str, annotation: Any) -> Any:
    """A command-line value as the TrainConfig field's type."""
    if annotation in (int, "int"):
        return int(text)
    if annotation in (float, "float"):
        return float(text)
    if annotation in (bool, "bool"):
        if text.lower() not in ("true", "false"):
            raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    if annotation in (str, "str"):
        return text
    if "None" in str(annotation) and text.lower() == "none":
        return None
    if "tuple" in str(annotation):
        return tuple(float(part) for part in text.split(","))
    if "float" in str(annotation):
        return float(text)
    raise argparse.ArgumentTypeError(f"cannot parse {text!r} as {annotation}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="faces-R.npz of build_face_data.py")
    parser.add_argument(
        "--run", type=Path, required=True, help="run folder (resumed when it has a checkpoint)"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name == "resolution":
            continue
        hint = hints[field.name]
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=lambda text, hint=hint: _parse(text, hint),
            default=argparse.SUPPRESS,  # absent unless given: `--ema-rampup none` is a value, not "not given"
            help=f"default {field.default}",
        )
    args = parser.parse_args()
    try:
        use_threads(args.threads)
        images = load_face_dataset(args.data)
        own = {"data", "run", "threads", "device"}
        given = {name: value for name, value in vars(args).items() if name not in own}
        config = TrainConfig(resolution=images.shape[1], **given)
        print(f"{len(images)} crops of {config.resolution} px from {args.data}; settings {config.to_dict()}")
        result = train(
            config, images, run_dir=args.run, device=args.device, progress=_LineProgress(args.run / LOG_NAME)
        )
    except ReenactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"step {result.step} after {result.seconds / 60:.1f} min of training; {result.generator}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
