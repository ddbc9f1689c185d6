"""Draw a training run's curves (D and G losses, the face detection rate of its samples) as a PNG.

python tools/plot_training.py face-world/run-64 -o docs/img/face-world-training.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from reenact.errors import ReenactError  # noqa: E402
from reenact.plots import write_plot_png  # noqa: E402
from reenact.train import LOG_NAME, read_log, training_curves  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run folder of tools/train_face_world.py")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()
    try:
        entries = read_log(args.run / LOG_NAME)
        if not entries:
            raise ReenactError(f"{args.run / LOG_NAME} has no log lines")
        write_plot_png(training_curves(entries), args.output)
    except ReenactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{len(entries)} log lines up to step {entries[-1]['step']} -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
