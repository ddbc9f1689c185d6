"""The weight registry and cache: which files the pipeline needs, where they live, how they get there.

- `registry`: the known files (`WeightEntry`), `all_entries()`, `get_entry(name)`, their sizes for people
  (`expected_size_text`, `format_size`);
- `formats`: the per-format checks a file passes before it enters the cache (`check_format`), and the
  direction-file readers `reenact.directions` uses;
- `store`: the cache folder, `locate(name)` (an installed package's copy, the torch hub folder, the cache),
  `weight_path(name)`, `backbone_path(arch)`, `lpips_heads_path(net)`, `import_file`, `verify`;
- `download`: `fetch(name)`, resumable and checked.

Import the public names from here (`from reenact import weights; weights.weight_path(name)`).
"""

from __future__ import annotations

from reenact.weights.download import fetch
from reenact.weights.formats import check_format
from reenact.weights.registry import (
    FACE_WORLD_NAME,
    WeightEntry,
    WeightKind,
    all_entries,
    expected_size_text,
    format_size,
    get_entry,
)
from reenact.weights.store import (
    FoundFile,
    VerifyResult,
    WeightSource,
    backbone_path,
    cache_dir,
    cached_file,
    checksum_problem,
    import_file,
    is_cached,
    locate,
    lpips_heads_path,
    package_copy,
    torch_hub_checkpoints,
    verify,
    verify_entry,
    weight_path,
    weights_dir,
)

__all__ = [
    "FACE_WORLD_NAME",
    "FoundFile",
    "VerifyResult",
    "WeightEntry",
    "WeightKind",
    "WeightSource",
    "all_entries",
    "backbone_path",
    "cache_dir",
    "cached_file",
    "check_format",
    "checksum_problem",
    "expected_size_text",
    "fetch",
    "format_size",
    "get_entry",
    "import_file",
    "is_cached",
    "locate",
    "lpips_heads_path",
    "package_copy",
    "torch_hub_checkpoints",
    "verify",
    "verify_entry",
    "weight_path",
    "weights_dir",
]
