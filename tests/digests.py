"""Digests of what a synthetic-world run computes: pivots, tuned weights and the output images.

Refactors of the optimisation and the pipeline must not change a single bit of these, so the digests
are stored (`tests/data/digests.json`) and `tests/test_digests.py` recomputes them. Bits depend on the
CPU (its instruction set, and its model: oneDNN picks kernels by it) and on torch, so the stored file
holds one record per platform and the test compares with the records made on its own.

    python -m tests.digests --write      # record them for this platform (before a change that must keep them)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import platform as pyplatform
import tempfile
from pathlib import Path

import numpy as np
import torch

from reenact import video
from reenact.gan.checkpoints import load_generator, save_generator
from reenact.latents import latent_batches
from reenact.stages.invert import Pivots
from reenact.synthetic import MEASURED_PIX_FMT, SyntheticConfig, make_world, write_world
from reenact_cli.main import run

DIGESTS_FILE = Path(__file__).parent / "data" / "digests.json"
SEED = 3
STEPS = (
    "--set", "invert.first_steps=30",
    "--set", "invert.warm_steps=12",
    "--set", "pti.base_steps=12",
    "--set", "pti.max_steps=12",
)  # fmt: skip
"""Few steps: the digests cover every code path, not a good fit."""
VARIANTS = {
    "adam-warm": ("invert", "--set", "invert.optimiser=adam", "--set", "invert.batch_size=3",
                  "--set", "invert.plateau_window=4", "--set", "invert.start_samples=0"),
    "adam-cold": ("invert", "--set", "invert.optimiser=adam", "--set", "invert.mode=cold",
                  "--set", "invert.batch_size=4", "--set", "invert.plateau_window=4"),
    "w-space": ("invert", "--set", "invert.space=w"),
    "tune-early-stop": ("tune", "--set", "pti.target_psnr=30", "--set", "pti.checkpoint_every=3",
                        "--set", "pti.locality_interval=2"),
}  # fmt: skip
"""Further regimes on the target alone: Adam's window and batch, W space, PTI's early stop."""


CPUINFO = Path("/proc/cpuinfo")


def cpu_model() -> str:
    """The CPU's vendor, family and model (Linux), else the machine's name."""
    fields = {"vendor_id": "", "cpu family": "", "model": ""}
    if CPUINFO.is_file():
        for line in CPUINFO.read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in fields and not fields[name.strip()]:
                fields[name.strip()] = value.strip()
            if not line.strip():
                break  # the first processor is enough
    return " ".join(fields.values()).strip() or pyplatform.machine()


def platform() -> dict[str, str]:
    """What the bits depend on besides the code."""
    capability = torch.backends.cpu.get_cpu_capability()
    return {"torch": torch.__version__, "cpu": capability, "cpu_model": cpu_model()}


def records_for(stored: dict, here: dict[str, str]) -> list[dict[str, str]]:
    """The digests of every stored record made on `here`: one whose platform agrees on every key it
    has (the first records did not name the CPU's model)."""
    return [
        record["digests"]
        for record in stored["records"]
        if all(here.get(key) == value for key, value in record["platform"].items())
    ]


def _sha(chunks: list[bytes]) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest()


def _stage_dir(summary: dict, name: str) -> Path:
    return Path(next(stage["location"] for stage in summary["stages"] if stage["name"] == name))


def compute(root: Path) -> dict[str, str]:
    """Run a transfer on a synthetic world under `root` (one thread) and digest them."""
    files = write_world(make_world(SyntheticConfig(seed=SEED)), root / "files")
    generator = save_generator(files.world.generator, root / "g.safetensors")
    written: list[bytes] = []
    original_write = video.VideoWriter.write

    def recording_write(
        self: video.VideoWriter,
        image: np.ndarray,
        *,
        pts: int | None = None,
        source: video.Frame | None = None,
        alpha: np.ndarray | None = None,
    ) -> None:
        written.append(np.ascontiguousarray(image).tobytes())
        original_write(self, image, pts=pts, source=source, alpha=alpha)

    common = ["--preset", "synthetic", "--set", f"video.pix_fmt={MEASURED_PIX_FMT}", "--threads", "1",
              "--device", "cpu", "--workdir", str(root / "work"), "--quiet", "--json", *STEPS]  # fmt: skip
    target = [
        str(files.target_video),
        "--generator",
        str(generator),
        "--landmarks",
        str(files.target_landmarks),
    ]
    runs = {"transfer": files.transfer_args(root / "transfer.mp4", generator=generator)}
    runs |= {name: [command, *target, *extra] for name, (command, *extra) in VARIANTS.items()}
    video.VideoWriter.write = recording_write  # type: ignore[method-assign]
    try:
        summaries = {}
        for name, args in runs.items():
            start = len(written)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = run([*args, *common])
            assert code == 0, f"{name} failed"
            summaries[name] = (json.loads(out.getvalue()), start, len(written))
    finally:
        video.VideoWriter.write = original_write  # type: ignore[method-assign]
    transfer, start, stop = summaries["transfer"]
    digests = {}
    for role in ("tar", "dri"):
        pivots = Pivots.load(_stage_dir(transfer, f"{role}-invert"))
        digests[f"{role}-pivots"] = _sha(
            [pivots.frames.tobytes()] + [batch.numpy().tobytes() for batch in latent_batches(pivots.ws)]
        )
    tuned = load_generator(_stage_dir(transfer, "tar-tune") / "generator.safetensors", device="cpu")
    digests["tar-tuned"] = _sha([value.numpy().tobytes() for _, value in sorted(tuned.state_dict().items())])
    digests["transfer-output"] = _sha(written[start:stop])
    for name, (command, *_) in VARIANTS.items():
        summary = summaries[name][0]
        if command == "invert":
            pivots = Pivots.load(_stage_dir(summary, "inp-invert"))
            digests[name] = _sha([batch.numpy().tobytes() for batch in latent_batches(pivots.ws)])
        else:
            tuned = load_generator(_stage_dir(summary, "inp-tune") / "generator.safetensors", device="cpu")
            digests[name] = _sha([value.numpy().tobytes() for _, value in sorted(tuned.state_dict().items())])
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--write", action="store_true", help="store them in tests/data/digests.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        digests = compute(Path(folder))
    record = {"platform": platform(), "digests": digests}
    print(json.dumps(record, indent=2))
    if args.write:
        stored = json.loads(DIGESTS_FILE.read_text()) if DIGESTS_FILE.is_file() else {"records": []}
        others = [old for old in stored["records"] if old["platform"] != record["platform"]]
        DIGESTS_FILE.write_text(json.dumps({"records": [*others, record]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
