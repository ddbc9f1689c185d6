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
KEPT_OUT = ("retalk_face1_vfr.mp4", "lp_driving_d0.mp4")
"""A talking target and an expressive driver left out of training: the real pair the face world's
identity and expression checks run on, and its out-of-domain inversion."""
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
    parser.add_argument(
        "--keep-out",
        default=",".join(KEPT_OUT),
        help="comma-separated files left out of training: the face world's checks on faces it never saw",
    )
    args = parser.parse_args()
    kept_out = tuple(name for name in args.keep_out.split(",") if name)
    started = time.perf_counter()
    manifest = build_face_dataset(
        [source for source in manifest_sources(args.testdata) if source.path.name not in kept_out],
        kept_out=kept_out,
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
