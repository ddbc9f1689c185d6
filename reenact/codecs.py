"""The output codecs reenact writes, in one table, and how one is chosen for a source and an output file.

Each `Codec` names its PyAV encoder, the containers that hold it, the bit depths and chroma layouts it
holds, alpha and whether it is lossless. `choose_codec` picks the codec of an output: `--codec` (the
`video.codec` setting) when given, else the source's own family where the output's container holds it
(a ProRes source gives ProRes, an H.264 source stays H.264), else the container's default. `pixel_format`
then picks the pixel format the encoder is given: the source's bit depth and chroma layout wherever the
codec holds them. Bad choices are one-line `ReenactError`s, raised before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from reenact.errors import ReenactError

SOURCE_CODEC = "source"
"""`video.codec` value meaning "like the source" (the default)."""
SEQUENCE = "sequence"
"""The "container" of an image sequence output, `sequence:FORMAT` (one file per frame)."""
EIGHT_BITS = 8
FLOAT_DEPTH = 32
"""The depth of a float source (EXR float), which only the float EXR output holds."""
TEN_BITS = 10
DNXHR_MIN_SIZE = (256, 120)
"""The smallest frame FFmpeg's DNxHR encoder takes (width, height)."""
FULL_SIZE_PROBE = 4
"""Side of the dummy frame whose plane sizes tell a pixel format's chroma subsampling."""


@dataclass(frozen=True)
class Codec:
    """One output codec: what it is called on the command line, how PyAV encodes it, what it holds."""

    name: str
    encoder: str
    """The PyAV (FFmpeg) encoder."""
    families: tuple[str, ...]
    """Decoder names of sources that are "this codec" (the default output for them)."""
    containers: tuple[str, ...]
    """FFmpeg muxers that hold it."""
    depths: tuple[int, ...]
    """Bit depths it holds, ascending."""
    chroma: tuple[str, ...]
    """Chroma layouts it holds (`4:2:0`, `4:2:2`, `4:4:4`, `rgb`), in order of preference."""
    alpha: bool
    lossless: bool
    options: dict[str, str] = field(default_factory=dict)
    """Fixed encoder options (profile)."""
    min_size: tuple[int, int] = (1, 1)
    """Smallest frame it encodes (width, height)."""
    description: str = ""

    @property
    def max_depth(self) -> int:
        return self.depths[-1]


CODECS: dict[str, Codec] = {
    codec.name: codec
    for codec in (
        Codec(
            name="h264",
            encoder="libx264",
            families=("h264",),
            containers=("mp4", "mov", "matroska"),
            depths=(8, 10),
            chroma=("4:2:0", "4:4:4", "4:2:2"),
            alpha=False,
            lossless=False,
            description="H.264 (x264); 4:2:0 or 4:4:4 as video.pix_fmt says",
        ),
        Codec(
            name="h265",
            encoder="libx265",
            families=("hevc",),
            containers=("mp4", "mov", "matroska"),
            depths=(8, 10, 12),
            chroma=("4:2:0", "4:4:4", "4:2:2"),
            alpha=False,
            lossless=False,
            options={"x265-params": "log-level=error"},
            description="H.265 / HEVC (x265); 4:2:0 or 4:4:4 as video.pix_fmt says",
        ),
        Codec(
            name="prores",
            encoder="prores_ks",
            families=("prores",),
            containers=("mov", "mxf", "matroska"),
            depths=(10,),
            chroma=("4:2:2",),
            alpha=False,
            lossless=False,
            options={"profile": "3"},
            description="Apple ProRes 422 HQ",
        ),
        Codec(
            name="prores4444",
            encoder="prores_ks",
            families=(),
            containers=("mov", "mxf", "matroska"),
            depths=(10, 12),
            chroma=("4:4:4",),
            alpha=True,
            lossless=False,
            options={"profile": "4"},
            description="Apple ProRes 4444 (a 12-bit format; prores_ks encodes 10-bit samples)",
        ),
        Codec(
            name="dnxhr_hq",
            encoder="dnxhd",
            families=(),
            containers=("mov", "mxf"),
            depths=(8,),
            chroma=("4:2:2",),
            alpha=False,
            lossless=False,
            options={"profile": "dnxhr_hq"},
            min_size=DNXHR_MIN_SIZE,
            description="Avid DNxHR HQ",
        ),
        Codec(
            name="dnxhr_hqx",
            encoder="dnxhd",
            families=(),
            containers=("mov", "mxf"),
            depths=(10,),
            chroma=("4:2:2",),
            alpha=False,
            lossless=False,
            options={"profile": "dnxhr_hqx"},
            min_size=DNXHR_MIN_SIZE,
            description="Avid DNxHR HQX",
        ),
        Codec(
            name="dnxhr_444",
            encoder="dnxhd",
            families=(),
            containers=("mov", "mxf"),
            depths=(10,),
            chroma=("4:4:4",),
            alpha=False,
            lossless=False,
            options={"profile": "dnxhr_444"},
            min_size=DNXHR_MIN_SIZE,
            description="Avid DNxHR 444",
        ),
        Codec(
            name="ffv1",
            encoder="ffv1",
            families=("ffv1",),
            containers=("matroska",),
            depths=(8, 9, 10, 12, 14, 16),
            chroma=("4:2:0", "4:2:2", "4:4:4", "rgb"),
            alpha=True,
            lossless=True,
            options={"level": "3"},
            description="FFV1 version 3, lossless; the source's own pixel format",
        ),
        Codec(
            name="png",
            encoder="png",
            families=("png",),
            containers=(f"{SEQUENCE}:png",),
            depths=(8, 16),
            chroma=("rgb",),
            alpha=True,
            lossless=True,
            description="PNG image sequence, 8 or 16-bit RGB",
        ),
        Codec(
            name="tiff",
            encoder="tiff",
            families=("tiff",),
            containers=(f"{SEQUENCE}:tiff",),
            depths=(8, 16),
            chroma=("rgb",),
            alpha=True,
            lossless=True,
            description="TIFF image sequence, 8 or 16-bit RGB",
        ),
        Codec(
            name="dpx",
            encoder="dpx",
            families=("dpx",),
            containers=(f"{SEQUENCE}:dpx",),
            depths=(8, 10, 12, 16),
            chroma=("rgb",),
            alpha=True,
            lossless=True,
            description="DPX image sequence, RGB at 8, 10, 12 or 16 bits",
        ),
        Codec(
            name="exr",
            encoder="exr",
            families=("exr",),
            containers=(f"{SEQUENCE}:exr",),
            depths=(8, 16, FLOAT_DEPTH),
            chroma=("rgb",),
            alpha=True,
            lossless=True,
            options={"format": "float", "compression": "zip16"},
            description="OpenEXR image sequence, 32-bit float RGB (the source's code values / full scale)",
        ),
        Codec(
            name="exr_half",
            encoder="exr",
            families=(),
            containers=(f"{SEQUENCE}:exr",),
            depths=(8, 10),
            chroma=("rgb",),
            alpha=True,
            lossless=False,
            options={"format": "half", "compression": "zip16"},
            description="OpenEXR image sequence, 16-bit half float RGB (exact to 10 bits)",
        ),
    )
}
"""Every codec reenact writes, by its `--codec` name."""
DNXHR = "dnxhr"
"""`--codec dnxhr`: the DNxHR profile that holds the source (HQ for 8 bits, HQX above, 444 for 4:4:4)."""
DNXHR_FAMILY = "dnxhd"
CONTAINER_DEFAULTS = {
    "mp4": "h264",
    "mov": "h264",
    "matroska": "h264",
    "mxf": DNXHR,
    f"{SEQUENCE}:png": "png",
    f"{SEQUENCE}:tiff": "tiff",
    f"{SEQUENCE}:dpx": "dpx",
    f"{SEQUENCE}:exr": "exr",
}
"""The codec of an output whose container cannot hold the source's own family (or a source we do not
write, e.g. a still image or MPEG-4 Part 2)."""
CONTAINER_NAMES = {
    "mp4": ".mp4/.m4v",
    "mov": ".mov",
    "matroska": ".mkv",
    "mxf": ".mxf",
    f"{SEQUENCE}:png": ".png sequences",
    f"{SEQUENCE}:tiff": ".tif sequences",
    f"{SEQUENCE}:dpx": ".dpx sequences",
    f"{SEQUENCE}:exr": ".exr sequences",
}
"""How an error names a container: by the extensions that choose it."""
FFV1_FALLBACK = {8: ("gbrp", "gbrp10le"), 16: ("gbrp16le",)}
"""Planar RGB for FFV1 when the source's own format is not one it takes, by depth, the first the encoder
takes (FFmpeg 8's FFV1 has no 8-bit planar RGB: 8-bit codes go into 10 bits, exactly)."""
FLOAT_RGB = "gbrpf32le"
"""The float RGB the EXR encoder takes (it stores half or float as its `format` option says)."""
SEQUENCE_FORMATS = {
    "png": ((8, "rgb24"), (16, "rgb48be")),
    "tiff": ((8, "rgb24"), (16, "rgb48le")),
    "dpx": ((8, "rgb24"), (10, "gbrp10le"), (12, "gbrp12le"), (16, "rgb48le")),
    "exr": ((FLOAT_DEPTH, FLOAT_RGB),),
    "exr_half": ((16, FLOAT_RGB),),
}
"""Pixel format of each image sequence format by the least depth it holds: the smallest that holds the
source's."""
"""FFV1's pixel format for a source whose own it does not hold (e.g. packed RGB), by depth class."""
ALPHA_VARIANTS = {
    "rgb24": ("rgba",),
    "rgb48be": ("rgba64be",),
    "rgb48le": ("rgba64le",),
    "gbrp": ("gbrap",),
    "gbrp10le": ("gbrap10le", "rgba64le"),
    "gbrp12le": ("gbrap12le", "rgba64le"),
    "gbrp16le": ("gbrap16le",),
    FLOAT_RGB: ("gbrapf32le",),
}
"""Pixel formats with an alpha plane for RGB ones, best first (DPX holds 10/12-bit RGB without alpha only:
with alpha it takes 16-bit RGBA, which holds the same codes scaled). YUV ones: `yuv` -> `yuva`."""
X26X_CHROMA = {"yuv420p": "4:2:0", "yuv444p": "4:4:4"}
"""`video.pix_fmt`'s values as the chroma layout of an H.264/H.265 output."""


CODEC_NAMES = (SOURCE_CODEC, *CODECS, DNXHR)
"""What `--codec` (`video.codec`) accepts."""


@dataclass(frozen=True)
class PixelLayout:
    """What a pixel format holds: bit depth, chroma layout and alpha."""

    depth: int
    chroma: str
    alpha: bool


@cache
def pixel_layout(pix_fmt: str) -> PixelLayout:
    """Bit depth (the largest component's), chroma layout and alpha of an FFmpeg pixel format (an
    unknown one: 8-bit 4:2:0, what most decoders give)."""
    import av

    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, av.error.FFmpegError):
        return PixelLayout(depth=EIGHT_BITS, chroma="4:2:0", alpha=False)
    depth = max(component.bits for component in fmt.components)
    alpha = any(component.is_alpha for component in fmt.components)
    if fmt.is_rgb:
        return PixelLayout(depth=depth, chroma="rgb", alpha=alpha)
    if len([c for c in fmt.components if not c.is_alpha]) == 1:
        return PixelLayout(depth=depth, chroma="gray", alpha=alpha)
    planes = av.VideoFrame(FULL_SIZE_PROBE, FULL_SIZE_PROBE, pix_fmt).planes
    chroma_w, chroma_h = (planes[1].width, planes[1].height) if len(planes) > 1 else (0, 0)
    if pix_fmt.startswith(("nv", "p0", "p2", "p4")):  # semi-planar: one plane holds both chroma samples
        chroma_w //= 2
    horizontal = FULL_SIZE_PROBE // max(chroma_w, 1)
    vertical = FULL_SIZE_PROBE // max(chroma_h, 1)
    chroma = {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0"}.get((horizontal, vertical), "other")
    return PixelLayout(depth=depth, chroma=chroma, alpha=alpha)


def container_name(format_name: str) -> str:
    return CONTAINER_NAMES.get(format_name, format_name)


def choose_codec(requested: str, *, source_codec: str, source_pix_fmt: str, container: str) -> Codec:
    """The codec of an output in `container` (an FFmpeg muxer name) for a source coded with
    `source_codec` in `source_pix_fmt`: `requested` (a `--codec` name) or, for `source`, the source's
    own family where the container holds it, else the container's default. A one-line `ReenactError`
    for an unknown name, a codec the container cannot hold or a source deeper than the codec holds."""
    layout = pixel_layout(source_pix_fmt)
    if requested not in CODEC_NAMES:
        raise ReenactError(f"unknown codec {requested!r}: use one of {', '.join(CODEC_NAMES)}")
    if requested == SOURCE_CODEC:
        own = _family_codec(source_codec, layout)
        requested = (
            own.name if own is not None and container in own.containers else CONTAINER_DEFAULTS[container]
        )
    codec = _dnxhr_for(layout) if requested == DNXHR else CODECS[requested]
    if container not in codec.containers:
        holders = ", ".join(container_name(name) for name in codec.containers)
        raise ReenactError(f"{codec.name} cannot be written to {container_name(container)}: use {holders}")
    if layout.depth > codec.max_depth:
        deeper = [name for name, other in CODECS.items() if other.max_depth >= layout.depth]
        raise ReenactError(
            f"the source has {layout.depth}-bit samples and {codec.name} holds at most {codec.max_depth} "
            f"bits: use {', '.join(deeper)}"
        )
    return codec


def _family_codec(source_codec: str, layout: PixelLayout) -> Codec | None:
    """The codec we write for a source coded with `source_codec` (None when we write none of its kind)."""
    if source_codec == DNXHR_FAMILY:
        return _dnxhr_for(layout)
    if source_codec == "prores" and layout.chroma == "4:4:4":
        return CODECS["prores4444"]
    return next((codec for codec in CODECS.values() if source_codec in codec.families), None)


def _dnxhr_for(layout: PixelLayout) -> Codec:
    """The DNxHR profile that holds a source of this layout."""
    if layout.chroma in ("4:4:4", "rgb"):
        return CODECS["dnxhr_444"]
    return CODECS["dnxhr_hqx"] if layout.depth > EIGHT_BITS else CODECS["dnxhr_hq"]


def pixel_format(codec: Codec, *, source_pix_fmt: str, x26x_pix_fmt: str) -> str:
    """The pixel format `codec` is given for a source in `source_pix_fmt`. FFV1 takes the source's own
    (so a lossless output can carry its exact codes); ProRes and DNxHR their profile's; H.264/H.265 the
    chroma `x26x_pix_fmt` (`video.pix_fmt`) at the source's depth (8, or 10 above it; 12 for H.265)."""
    layout = pixel_layout(source_pix_fmt)
    if codec.name in SEQUENCE_FORMATS:
        formats = SEQUENCE_FORMATS[codec.name]
        return next(fmt for depth, fmt in formats if depth >= min(layout.depth, codec.max_depth))
    if codec.name == "ffv1":
        own = plain_format(source_pix_fmt)
        if own in _encoder_formats(codec.encoder) and is_planar(own):
            return own
        taken = _encoder_formats(codec.encoder)
        candidates = FFV1_FALLBACK[EIGHT_BITS if layout.depth <= EIGHT_BITS else 16]
        return next(fmt for fmt in candidates if fmt in taken)
    if codec.encoder == "prores_ks":
        return "yuv444p10le" if codec.chroma == ("4:4:4",) else "yuv422p10le"
    if codec.encoder == "dnxhd":
        subsampling = "444" if codec.chroma == ("4:4:4",) else "422"
        return f"yuv{subsampling}p" + ("10le" if codec.max_depth > EIGHT_BITS else "")
    depth = next(d for d in codec.depths if d >= min(layout.depth, codec.max_depth))
    base = x26x_pix_fmt
    return base if depth == EIGHT_BITS else f"{base}{depth}le"


def alpha_format(codec: Codec, *, pix_fmt: str) -> str:
    """The pixel format with an alpha plane that `codec` is given instead of `pix_fmt` (`--alpha`); a
    one-line `ReenactError` when the codec holds no alpha, or none at that depth and layout."""
    if not codec.alpha:
        holders = ", ".join(name for name, other in CODECS.items() if other.alpha)
        raise ReenactError(f"--alpha: {codec.name} has no alpha channel; use {holders}")
    candidates = ALPHA_VARIANTS.get(pix_fmt, (pix_fmt.replace("yuv", "yuva", 1),))
    taken = _encoder_formats(codec.encoder)
    chosen = next((candidate for candidate in candidates if candidate in taken), None)
    if chosen is None:
        raise ReenactError(f"--alpha: {codec.name} holds no alpha channel with {pix_fmt} samples")
    return chosen


def plain_format(pix_fmt: str) -> str:
    """`pix_fmt` without FFmpeg's deprecated full-range alias (`yuvj420p` is `yuv420p`, full range)."""
    return pix_fmt.replace("yuvj", "yuv", 1) if pix_fmt.startswith("yuvj") else pix_fmt


@cache
def is_planar(pix_fmt: str) -> bool:
    """Whether every component of `pix_fmt` has a plane of its own (what `VideoWriter` can keep codes of)."""
    import av

    components = av.VideoFormat(pix_fmt).components
    return len({component.plane for component in components}) == len(components)


@cache
def _encoder_formats(encoder: str) -> tuple[str, ...]:
    import av

    return tuple(fmt.name for fmt in av.codec.Codec(encoder, "w").video_formats or ())
