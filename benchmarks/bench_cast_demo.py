"""A cast against the one-person demo: does reenacting people inside a scene cost quality?

Issue #25's must-show: on the synthetic multi-person scene, a cast transfer's face PSNR per person within
1 dB of the one-person demo's against its truth. Per seed, two one-person worlds are drawn by one random
generator (`reenact.synthetic`: the world of the seed, and one of the seed + `SECOND_WORLD_SEED` with the
first's generator), and the multi-person scene of the seed (`reenact.synthetic_scene`: 4 shots of 8
frames, the same generator) gives its person 0 the first world's target latents and its person 1 the
second's (`synthetic_scene.worlds_scene` builds all three). So each person is reenacted twice, with the
same face and the same driver frame by frame:

- one person: `reenact transfer TARGET DRIVER` on their world's clips (the demo's run);
- cast: `reenact transfer SCENE --cast`, each person driven by their world's driver at strength 1.

Both use the `synthetic` preset with 4:4:4 outputs (`MEASURED_PIX_FMT`), sidecar landmarks and the
driver's frame 0 as reference. Reported: each person's face PSNR against their truth (pooled over frames,
`demo.face_psnr`) in each shot they are in and over all their frames, for the cast and for the one-person
run, and the difference. The shots differ in where a person sits: the left slot (the world's face size)
or the right (0.75 of it, a smaller crop); person 1 is absent from the third shot. The people found by
`reenact people` are checked against the truth; a seed where they differ (the pixel descriptor of the
synthetic world splitting a face whose large motion changes it across a cut) is reported and left out
of the median.

Usage: python benchmarks/bench_cast_demo.py [--seeds 0 1 2] [--set invert.spread_weight=0.01 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from reenact.demo import decode, face_psnr
from reenact.gan.checkpoints import save_generator
from reenact.synthetic import (
    MEASURED_PIX_FMT,
    SyntheticFiles,
    synthetic_settings,
    true_transfer_frames,
    write_world,
)
from reenact.synthetic_scene import (
    SLOT_SCALE,
    SceneConfig,
    true_cast_frames,
    worlds_scene,
    write_scene,
    write_world_cast,
)
from reenact_cli.main import run


def cli(args: list[str]) -> dict:
    """The CLI's `--json` summary of one command; exits with its error line if it fails."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(args)
    if code != 0:
        raise SystemExit(f"error: {' '.join(args[:2])} failed: {err.getvalue().strip()}")
    return json.loads(out.getvalue())


def one_person(files: SyntheticFiles, output: Path, common: list[str]) -> np.ndarray:
    """The one-person run on a written world's clips (the demo's run) into `output`, decoded [T, H, W, 3]."""
    cli(
        [
            "transfer", str(files.target_video), str(files.driver_video), "-o", str(output),
            "--target-landmarks", str(files.target_landmarks), "--driver-landmarks",
            str(files.driver_landmarks), "--driver-ref", "0", *common,
        ]
    )  # fmt: skip
    return decode(output)


def measure(seed: int, root: Path, extra: list[str], *, motion: float) -> dict:
    """Each person's face PSNR per shot and overall, cast and one person, on the worlds of `seed`."""
    scene, worlds = worlds_scene(seed, motion=motion)
    first, scene_config = worlds[0], scene.config
    clip, landmarks = write_scene(scene, root / "scene")
    generator = save_generator(first.generator, root / "g.safetensors")
    common = [
        "--generator", str(generator), "--preset", "synthetic", "--set", f"video.pix_fmt={MEASURED_PIX_FMT}",
        "--workdir", str(root / "work"), "--quiet", "--json", *extra,
    ]  # fmt: skip
    people = cli(
        [
            "people", str(clip), "--landmarks", str(landmarks), "--preset", "synthetic",
            "--workdir", str(root / "work"), "--quiet", "--json",
        ]
    )  # fmt: skip
    drivers = [write_world(world, root / f"world{person}") for person, world in enumerate(worlds)]
    cast = write_world_cast(root / "cast.toml", drivers)
    output = root / "cast.mp4"
    scene_args = [str(clip), "--target-landmarks", str(landmarks)]
    cli(["transfer", *scene_args, "--cast", str(cast), "-o", str(output), *common])
    composite = synthetic_settings().composite
    cast_truth, cast_regions = true_cast_frames(
        scene,
        decode(clip),
        [(world.driver.ws, 1.0) for world in worlds],
        layer_mask=first.layer_mask,
        composite=composite,
    )
    many = decode(output)
    persons = []
    for person, world in enumerate(worlds):
        one = one_person(drivers[person], root / f"one{person}.mp4", common)
        truth, regions = true_transfer_frames(world, composite=composite, ref=0)
        present = scene.present[person]
        shots = []
        for start, slots in zip(scene.shot_starts, scene_config.shots, strict=True):
            if person not in slots:
                continue
            frames = slice(start, start + scene_config.shot_frames)
            shots.append(
                {
                    "slot_scale": SLOT_SCALE[slots.index(person)],
                    "cast_db": face_psnr(many[frames], cast_truth[frames], cast_regions[person][frames]),
                    "one_person_db": face_psnr(one[frames], truth[frames], regions[frames]),
                }
            )
        persons.append(
            {
                "person": person,
                "shots": shots,
                "cast_db": face_psnr(many[present], cast_truth[present], cast_regions[person][present]),
                "one_person_db": face_psnr(one[present], truth[present], regions[present]),
            }
        )
    return {
        "seed": seed,
        "people_found": [person["frames"] for person in people["people"]],
        "people_true": [int(count) for count in scene.present.sum(axis=1)],
        "persons": persons,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for both runs"
    )
    parser.add_argument(
        "--motion",
        type=float,
        default=SceneConfig().motion,
        help="each world's motion in W, in W spreads (default: the scene's own; the demo's 0.5 changes a "
        "face enough across a cut that the synthetic pixel descriptor splits it on most seeds)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    extra = [item for setting in args.set for item in ("--set", setting)]
    reports = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix=f"cast-demo-{seed}-") as folder:
            reports.append(measure(seed, Path(folder), extra, motion=args.motion))
        print(f"seed {seed} done", file=sys.stderr)
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    print("face PSNR against the truth (dB): each person in the cast | the same face and driver alone")
    header = f"{'seed':<6}{'person':<8}{'shot':<6}{'slot':>6}{'cast':>9}{'one':>9}{'cast - one':>12}"
    print(header)
    print("-" * len(header))
    gaps = []
    for report in reports:
        linked = report["people_found"] == report["people_true"]
        if not linked:
            print(
                f"seed {report['seed']}: people found with frames {report['people_found']}, in truth "
                f"{report['people_true']}: the people stage split someone (left out of the median)"
            )
        for person in report["persons"]:
            for index, shot in enumerate(person["shots"]):
                gap = shot["cast_db"] - shot["one_person_db"]
                print(
                    f"{report['seed']:<6}{person['person']:<8}{index:<6}{shot['slot_scale']:>6.2f}"
                    f"{shot['cast_db']:>9.2f}{shot['one_person_db']:>9.2f}{gap:>12.2f}"
                )
            gap = person["cast_db"] - person["one_person_db"]
            if linked:
                gaps.append(gap)
            print(
                f"{report['seed']:<6}{person['person']:<8}{'all':<6}{'':>6}"
                f"{person['cast_db']:>9.2f}{person['one_person_db']:>9.2f}{gap:>12.2f}"
            )
    if gaps:
        print(f"median over linked seeds and people of cast - one person: {statistics.median(gaps):.2f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
