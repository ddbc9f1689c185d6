"""Build the face world's training set from the real clips and photos of ../shared/testdata (issue #27).

    python tools/build_face_data.py --out face-world/data [--resolutions 64,128] [--every 2]

Every file of testdata/MANIFEST.tsv whose role does not say it has no (human) face is aligned by
reenact's own stages (`reenact.face_data`); the manifest written beside the crops records each file's
licence and origin (from MANIFEST.tsv), sha256, people and frames. The crops are derived from fetched
clips: keep them out of the repository (face-world/ is ignored).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from reenact.device import resolve_runtime  # noqa: E402
from reenact.face_data import DEFAULT_EVERY, DEFAULT_HELD_OUT_SHARE, FaceSource, build_face_dataset  # noqa: E402
from reenact.workspace import Workspace  # noqa: E402

SHARED_DIR = Path(os.environ.get("REENACT_SHARED", REPO_ROOT.parent / "shared"))
NO_FACE_ROLES = ("no-face", "no-human-face")
"""MANIFEST.tsv roles of files without a human face to learn from (a bird, a dog, a rotated wall)."""


def manifest_sources(testdata: Path) -> list[FaceSource]:
    """The files of testdata/MANIFEST.tsv that have human faces, with licence and origin."""
    lines = (testdata / "MANIFEST.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    sources = []
    for line in lines[1:]:
        if not line.strip():
            continue
        row = dict(zip(header, line.split("\t"), strict=False))
        if any(role in row["role"] for role in NO_FACE_ROLES):
            continue
        origin = f"{row['source_repo']}/{row['path']}@{row['commit']}"
        sources.append(FaceSource(path=testdata / row["file"], licence=row["license"], origin=origin))
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testdata", type=Path, default=SHARED_DIR / "testdata")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "face-world" / "data")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "face-world" / "work")
    parser.add_argument("--resolutions", default="64,128", help="comma-separated crop sizes")
    parser.add_argument("--every", type=int, default=DEFAULT_EVERY)
    parser.add_argument("--held-out-share", type=float, default=DEFAULT_HELD_OUT_SHARE)
    args = parser.parse_args()
    started = time.perf_counter()
    manifest = build_face_dataset(
        manifest_sources(args.testdata),
        out_dir=args.out,
        workspace=Workspace(args.workdir),
        runtime=resolve_runtime("cpu"),
        resolutions=tuple(int(value) for value in args.resolutions.split(",")),
        every=args.every,
        held_out_share=args.held_out_share,
    )
    for source in manifest["sources"]:
        people = source["people"]
        first = min(manifest["resolutions"])
        train = sum(len(person[f"train_frames_{first}"]) for person in people)
        held = sum(len(person[f"held_out_frames_{first}"]) for person in people)
        note = source.get("skipped", f"{len(people)} people, {train} train + {held} held-out crops")
        print(f"{source['file']:36s} {source['licence'][:24]:24s} {note}")
    print(f"counts {manifest['counts']} in {time.perf_counter() - started:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
