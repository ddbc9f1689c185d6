"""Ship a face-world training run: copy its EMA generator into the package and write the file's size and
sha256 into the weight registry (`reenact/weights/registry.py`), which checks them on every load.

    python tools/ship_face_world.py face-world/run-64

Then run `python tools/face_world_direction.py` (the demo's expression direction belongs to the generator)
and update docs/face-world.md with the run's steps and time.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from reenact.train import GENERATOR_NAME  # noqa: E402
from reenact.weights.registry import FACE_WORLD_FILE  # noqa: E402

REGISTRY = REPO_ROOT / "reenact" / "weights" / "registry.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run folder of tools/train_face_world.py")
    args = parser.parse_args()
    source = args.run / GENERATOR_NAME
    if not source.is_file():
        print(f"error: {source} not found: train first", file=sys.stderr)
        return 1
    target = REPO_ROOT / "reenact" / FACE_WORLD_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    data = target.read_bytes()
    text = REGISTRY.read_text()
    text = re.sub(
        r'FACE_WORLD_SHA256 = "[0-9a-f]*"', f'FACE_WORLD_SHA256 = "{hashlib.sha256(data).hexdigest()}"', text
    )
    text = re.sub(r"FACE_WORLD_BYTES = [0-9_]+", f"FACE_WORLD_BYTES = {len(data):_}", text)
    REGISTRY.write_text(text)
    print(f"{source} -> {target} ({len(data):,} bytes); registry updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
