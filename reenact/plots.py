"""Line plots with two y axes, drawn with OpenCV (matplotlib is not a dependency): `reenact evaluate
--plot` (PSNR and identity against the frame) and the face world's training curves (losses and the face
detection rate against the step)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from reenact.errors import ReenactError
from reenact.files import atomic_path

PLOT_WIDTH = 960
PLOT_HEIGHT = 480
PLOT_MARGIN = (80, 40, 80, 60)
"""Left, top, right, bottom margins of the plot area in pixels."""
NUM_TICKS = 5
BACKGROUND = (255, 255, 255)
AXIS_COLOUR = (40, 40, 40)
GRID_COLOUR = (225, 225, 225)
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.45
TITLE_SCALE = 0.55
NAME_SCALE = 0.5
LINE_WIDTH = 2
LEGEND_ROW = 20
"""Pixels between legend rows."""
LONE_POINT_HALF_DASH = np.array([2.0, 0.0])
"""A series point with no finite neighbour is drawn as a dash this far to each side (pixels)."""
Colour = tuple[int, int, int]
"""BGR."""


@dataclass(frozen=True)
class Series:
    """One line: its x and y values (NaN y values break it) and its legend label."""

    xs: np.ndarray  # [N]
    ys: np.ndarray  # [N]
    colour: Colour
    label: str


@dataclass(frozen=True)
class Axis:
    """A y axis and the lines read against it; its limits are rounded out to multiples of `step`."""

    name: str
    series: tuple[Series, ...]
    step: float
    colour: Colour
    ceiling: float | None = None
    decimals: int = 1
    limits: tuple[float, float] | None = None
    """Fixed limits (a share: 0 to 1) instead of ones rounded out from the values."""


def axis_range(values: np.ndarray, *, step: float, ceiling: float | None = None) -> tuple[float, float]:
    """Limits that hold the finite `values`, rounded out to multiples of `step`."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, step
    low = math.floor(finite.min() / step) * step
    high = math.ceil(finite.max() / step) * step
    if ceiling is not None:
        high = min(high, ceiling)
    if high - low < step:
        high = low + step
    return low, high


def polylines(xs: np.ndarray, ys: np.ndarray) -> list[np.ndarray]:
    """Pixel polylines through the finite points, broken at NaN gaps (a lone point is a short dash)."""
    lines = []
    finite = np.isfinite(ys)
    padded = np.concatenate([[False], finite, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        points = np.stack([xs[start:stop], ys[start:stop]], axis=1)
        if len(points) == 1:
            points = np.concatenate([points - LONE_POINT_HALF_DASH, points + LONE_POINT_HALF_DASH])
        lines.append(np.round(points).astype(np.int32))
    return lines


def two_axis_plot(
    *,
    left: Axis,
    right: Axis,
    x_name: str,
    title: str = "",
    width: int = PLOT_WIDTH,
    height: int = PLOT_HEIGHT,
) -> np.ndarray:
    """BGR uint8 image [H, W, 3]: the `left` axis's lines and the `right` axis's, against x from 0 to the
    largest x of any line."""
    margin_left, margin_top, margin_right, margin_bottom = PLOT_MARGIN
    x0, x1, y0, y1 = margin_left, width - margin_right, margin_top, height - margin_bottom  # y0 at the top
    canvas = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    all_xs = np.concatenate([line.xs for axis in (left, right) for line in axis.series] or [np.zeros(0)])
    last = max(float(all_xs.max()) if all_xs.size else 1.0, 1.0)
    limits = [
        axis.limits
        or axis_range(
            np.concatenate([line.ys for line in axis.series] or [np.zeros(0)]),
            step=axis.step,
            ceiling=axis.ceiling,
        )
        for axis in (left, right)
    ]
    for tick in range(NUM_TICKS + 1):
        frac = tick / NUM_TICKS
        y = round(y1 - (y1 - y0) * frac)
        cv2.line(canvas, (x0, y), (x1, y), GRID_COLOUR, 1)
        for axis, (low, high), label_x in ((left, limits[0], x0 - 50), (right, limits[1], x1 + 8)):
            label = f"{low + frac * (high - low):.{axis.decimals}f}"
            cv2.putText(canvas, label, (label_x, y + 5), FONT, FONT_SCALE, axis.colour, 1, cv2.LINE_AA)
        x = round(x0 + (x1 - x0) * frac)
        cv2.line(canvas, (x, y1), (x, y1 + 5), AXIS_COLOUR, 1)
        cv2.putText(
            canvas, f"{frac * last:.0f}", (x - 10, y1 + 22), FONT, FONT_SCALE, AXIS_COLOUR, 1, cv2.LINE_AA
        )
    cv2.rectangle(canvas, (x0, y0), (x1, y1), AXIS_COLOUR, 1)
    cv2.putText(
        canvas, x_name, ((x0 + x1) // 2 - 20, height - 15), FONT, NAME_SCALE, AXIS_COLOUR, 1, cv2.LINE_AA
    )
    cv2.putText(canvas, left.name, (8, y0 - 15), FONT, NAME_SCALE, left.colour, 1, cv2.LINE_AA)
    cv2.putText(canvas, right.name, (x1 - 40, y0 - 15), FONT, NAME_SCALE, right.colour, 1, cv2.LINE_AA)
    legend = []
    for axis, (low, high) in zip((left, right), limits, strict=True):
        for line in axis.series:
            xs = x0 + (x1 - x0) * line.xs / last
            ys = y1 - (y1 - y0) * (line.ys - low) / (high - low)
            cv2.polylines(canvas, polylines(xs, ys), False, line.colour, LINE_WIDTH, cv2.LINE_AA)
            legend.append(line)
    legend_x, legend_y = x0 + 12, y0 + LEGEND_ROW
    for row, line in enumerate(legend):
        y = legend_y + LEGEND_ROW * row
        cv2.line(canvas, (legend_x, y - 4), (legend_x + 24, y - 4), line.colour, LINE_WIDTH, cv2.LINE_AA)
        cv2.putText(canvas, line.label, (legend_x + 32, y), FONT, FONT_SCALE, AXIS_COLOUR, 1, cv2.LINE_AA)
    if title:
        cv2.putText(
            canvas, title, ((x0 + x1) // 2 - 90, y0 - 15), FONT, TITLE_SCALE, AXIS_COLOUR, 1, cv2.LINE_AA
        )
    return canvas


def write_plot_png(image: np.ndarray, path: Path | str) -> Path:
    """A BGR plot image as a PNG at `path`, written atomically (`ReenactError` for another suffix)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ReenactError(f"the plot is written as PNG; give a .png path, not {path}")
    ok, encoded = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV always has PNG
        raise ReenactError("OpenCV could not encode the plot as PNG")
    try:
        with atomic_path(path) as temporary:
            temporary.write_bytes(encoded.tobytes())
    except OSError as exc:
        raise ReenactError(f"cannot write {path}: {exc.strerror}") from None
    return path
