"""``load_dataset(path)``: any supported layout, detected from the files in it (or named with ``format``)."""

from __future__ import annotations

from pathlib import Path

from pdmer.data.curves import CurveSet
from pdmer.errors import InputError

FORMATS = ("deam", "pmemo", "plain")


def detect_format(root: Path) -> str:
    if (root / "annotations" / "annotations averaged per song").is_dir() or (root / "DEAM_Annotations").is_dir():
        return "deam"
    if (root / "annotations" / "annotations per each rater").is_dir():  # a DEAM copy with per-rater files only
        return "deam"
    if (root / "annotations" / "dynamic_annotations.csv").is_file() or (root / "PMEmo2019").is_dir():
        return "pmemo"
    if (root / "dataset.json").is_file() or (root / "annotations.csv").is_file() or (root / "annotations").is_dir():
        return "plain"
    raise InputError(
        f"{root}: cannot tell the dataset layout: expected annotations/annotations averaged per song/ (DEAM), "
        "annotations/dynamic_annotations.csv (PMEmo) or annotations.csv / annotations/<listener>/<song>.csv "
        "(pdmer's plain format); pass --format if it is one of them"
    )


def load_dataset(
    root: str | Path,
    format: str | None = None,
    *,
    raters: bool = False,
    audio_dir: str | Path | None = None,
    scale: str | None = None,
) -> CurveSet:
    """Load a dataset. ``raters``: DEAM's per-rater curves too; ``audio_dir``: where DEAM's audio is;
    ``scale``: the annotation scale of a plain dataset."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist")
    format = format or detect_format(root)
    if format == "deam":
        from pdmer.data.deam import load_deam

        return load_deam(root, raters=raters, audio_dir=audio_dir)
    if format == "pmemo":
        from pdmer.data.pmemo import load_pmemo

        return load_pmemo(root, require_audio=False, audio_dir=audio_dir)
    if format == "plain":
        from pdmer.data.plain import load_plain

        return load_plain(root, scale=scale, require_audio=False)
    raise InputError(f"unknown dataset format {format!r}; choose one of {', '.join(FORMATS)}")
