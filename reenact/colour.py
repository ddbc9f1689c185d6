"""The faces' colour space, and the way between it and a source's.

The generator (FFHQ, the face world) renders faces as BT.709 pictures: BT.709 primaries, D65 white, the
BT.709 transfer curve (the codes a BT.709 video decodes to). A source tagged otherwise (BT.601's
SMPTE 170M or BT.470 primaries, a gamma 2.2 or 2.8 curve, sRGB, linear light) has its face crops moved
into that space before they are inverted (`to_face_space`), and every rendered face moved back into the
source's before it is pasted (`from_face_space`), so the faces the driver changes come back in the
source's own colours. A BT.709 or untagged source needs no conversion (`needs_conversion` is False), and
its crops are the decoded codes as before. HDR transfers (PQ, HLG) and gamuts wider than BT.709 are
refused before any work (`video.check_face_colour`): a BT.709 face cannot hold their range.

The codes follow FFmpeg's AVCOL_PRI_* and AVCOL_TRC_* numbering, as `VideoInfo` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

import numpy as np

if TYPE_CHECKING:  # torch is imported only where a tensor comes in: `reenact probe` and others never load it
    import torch

Array = Union[np.ndarray, "torch.Tensor"]
"""A picture on the host (numpy) or where the generator rendered it (torch)."""

Chromaticities = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]
"""(x, y) of red, green, blue and the white point."""

D65 = (0.3127, 0.3290)
ILLUMINANT_C = (0.310, 0.316)
BT709_PRIMARIES = 1
UNSPECIFIED = 2
PRIMARIES: dict[int, tuple[str, Chromaticities]] = {
    BT709_PRIMARIES: ("BT.709", ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), D65)),
    4: ("BT.470 M", ((0.670, 0.330), (0.210, 0.710), (0.140, 0.080), ILLUMINANT_C)),
    5: ("BT.470 BG", ((0.640, 0.330), (0.290, 0.600), (0.150, 0.060), D65)),
    6: ("SMPTE 170M", ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), D65)),
    7: ("SMPTE 240M", ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), D65)),
    22: ("EBU 3213-E", ((0.630, 0.340), (0.295, 0.605), (0.155, 0.077), D65)),
}
"""The primaries a face is converted into, by AVCOL_PRI code (untagged: BT.709's)."""


@dataclass(frozen=True)
class Curve:
    """A transfer curve (OETF) from linear light L to a code V, both in 0..1: V = `slope`·L below `beta`,
    `alpha`·L^`power` − (`alpha` − 1) above it; a pure power where `beta` is 0 and `alpha` 1."""

    name: str
    power: float
    beta: float = 0.0
    alpha: float = 1.0
    slope: float = 1.0


BT709_TRANSFER = 1
BT709_CURVE = (1, 6, 14, 15)
"""Transfers that are BT.709's curve: BT.709, SMPTE 170M, BT.2020 10- and 12-bit."""
BT709 = Curve("BT.709", power=0.45, beta=0.018053968510807, alpha=1.099296826809442, slope=4.5)
TRANSFERS: dict[int, Curve] = {
    **dict.fromkeys(BT709_CURVE, BT709),
    4: Curve("gamma 2.2 (BT.470 M)", power=1 / 2.2),
    5: Curve("gamma 2.8 (BT.470 BG)", power=1 / 2.8),
    7: Curve("SMPTE 240M", power=0.45, beta=0.0228, alpha=1.1115, slope=4.0),
    8: Curve("linear", power=1.0),
    13: Curve("sRGB (IEC 61966-2-1)", power=1 / 2.4, beta=0.0031308, alpha=1.055, slope=12.92),
}
"""The transfer curves a face is converted into, by AVCOL_TRC code (untagged: BT.709's)."""


@dataclass(frozen=True)
class SourceColour:
    """A source's primaries and transfer (AVCOL_PRI / AVCOL_TRC codes), as its video tags them."""

    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED

    @property
    def known(self) -> bool:
        """Whether faces can be converted into it (`PRIMARIES`, `TRANSFERS`, or untagged)."""
        return self.primaries in (*PRIMARIES, UNSPECIFIED) and self.transfer in (*TRANSFERS, UNSPECIFIED)

    @property
    def needs_conversion(self) -> bool:
        """False where the source's codes are BT.709 pictures already (tagged so, or untagged)."""
        primaries = BT709_PRIMARIES if self.primaries == UNSPECIFIED else self.primaries
        transfer = BT709_TRANSFER if self.transfer == UNSPECIFIED else self.transfer
        return not (primaries == BT709_PRIMARIES and transfer in BT709_CURVE)

    def key(self) -> dict[str, int] | None:
        """What a cache key records of it: None where nothing is converted (keys stay as they were)."""
        return {"primaries": self.primaries, "transfer": self.transfer} if self.needs_conversion else None


FACE_COLOUR = SourceColour(primaries=BT709_PRIMARIES, transfer=BT709_TRANSFER)
"""The faces' own colour: a picture in it is not converted."""


def rgb_to_xyz(chromaticities: Chromaticities) -> np.ndarray:
    """The [3, 3] matrix from linear RGB of these primaries to CIE XYZ (white at Y = 1)."""
    (xr, yr), (xg, yg), (xb, yb), (xw, yw) = chromaticities
    columns = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in ((xr, yr), (xg, yg), (xb, yb))]).T
    white = np.array([xw / yw, 1.0, (1 - xw - yw) / yw])
    return columns * np.linalg.solve(columns, white)[None, :]


BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
"""The Bradford cone response matrix, for moving a colour from one white point to another."""


def white_adaptation(source: tuple[float, float], target: tuple[float, float]) -> np.ndarray:
    """[3, 3] XYZ -> XYZ: a colour seen under white `source` to the one that looks the same under
    `target` (Bradford); the identity for one white."""

    def xyz(white: tuple[float, float]) -> np.ndarray:
        x, y = white
        return np.array([x / y, 1.0, (1 - x - y) / y])

    scale = (BRADFORD @ xyz(target)) / (BRADFORD @ xyz(source))
    return np.linalg.inv(BRADFORD) @ np.diag(scale) @ BRADFORD


def primaries_matrix(primaries: int) -> np.ndarray:
    """[3, 3] linear RGB of `primaries` -> linear BT.709 RGB (through XYZ, whites adapted)."""
    if primaries in (BT709_PRIMARIES, UNSPECIFIED):
        return np.eye(3)
    source = PRIMARIES[primaries][1]
    bt709 = PRIMARIES[BT709_PRIMARIES][1]
    adapt = white_adaptation(source[3], bt709[3])
    return np.linalg.inv(rgb_to_xyz(bt709)) @ adapt @ rgb_to_xyz(source)


def _is_tensor(values: object) -> bool:
    return type(values).__module__.startswith("torch")


def _where(condition: Array, a: Array, b: Array) -> Array:
    if _is_tensor(condition):
        import torch

        return torch.where(condition, a, b)
    return np.where(condition, a, b)


def curve_of(transfer: int) -> Curve:
    """The curve of AVCOL_TRC code `transfer` (untagged: BT.709's); `ValueError` for one not in
    `TRANSFERS`."""
    if transfer == UNSPECIFIED:
        return BT709
    if transfer not in TRANSFERS:
        raise ValueError(f"no transfer curve for AVCOL_TRC {transfer}")
    return TRANSFERS[transfer]


def decode_transfer(codes: Array, transfer: int) -> Array:
    """Linear light of `codes` in 0..1 under the transfer curve `transfer` (its inverse OETF)."""
    curve = curve_of(transfer)
    v = codes.clip(0.0, 1.0)
    return _where(
        v < curve.slope * curve.beta,
        v / curve.slope,
        ((v + curve.alpha - 1) / curve.alpha) ** (1 / curve.power),
    )


def encode_transfer(linear: Array, transfer: int) -> Array:
    """Codes in 0..1 of linear light `linear` under the transfer curve `transfer` (its OETF)."""
    curve = curve_of(transfer)
    light = linear.clip(0.0, 1.0)
    return _where(
        light < curve.beta, curve.slope * light, curve.alpha * light**curve.power - (curve.alpha - 1)
    )


def _convert(image: Array, *, decode: int, matrix: np.ndarray, encode: int) -> Array:
    """uint8 RGB [..., 3] decoded by one transfer, through a linear [3, 3] `matrix`, encoded by another."""
    if _is_tensor(image):
        import torch

        values = image.to(torch.float32) / 255.0
        linear = decode_transfer(values, decode) @ torch.as_tensor(matrix.T, dtype=values.dtype).to(
            values.device
        )
        return torch.round(encode_transfer(linear, encode) * 255.0).to(torch.uint8)
    linear = decode_transfer(image.astype(np.float64) / 255.0, decode) @ matrix.T  # [..., 3]
    return np.rint(encode_transfer(linear, encode) * 255.0).astype(np.uint8)


def to_face_space(image: Array, colour: SourceColour) -> Array:
    """A source picture [..., 3] uint8 in `colour` as the BT.709 picture the generator renders (uint8);
    unchanged where the source is BT.709 already."""
    if not colour.needs_conversion:
        return image
    matrix = primaries_matrix(colour.primaries)
    return _convert(image, decode=colour.transfer, matrix=matrix, encode=BT709_TRANSFER)


def from_face_space(image: Array, colour: SourceColour) -> Array:
    """A rendered BT.709 face [..., 3] uint8 (host or device) as the source's colour `colour` (uint8):
    `to_face_space`'s inverse, up to rounding and BT.709's gamut."""
    if not colour.needs_conversion:
        return image
    matrix = np.linalg.inv(primaries_matrix(colour.primaries))
    return _convert(image, decode=BT709_TRANSFER, matrix=matrix, encode=colour.transfer)
