"""``load_dataset(path)``: any supported layout, detected from the files in it (or named with ``format``)."""

from __future__ import annotations

from pathlib import Path

from pdmer.data.curves import CurveSet
from pdmer.errors import InputError

FORMATS = ("deam", "emomusic", "pmemo", "vgmidi", "4q", "emopia", "plain")


def detect_format(root: Path) -> str:
    from pdmer.data.quadrants import emopia_dir, is_4q
    from pdmer.data.vgmidi import is_vgmidi

    if (root / "annotations" / "arousal_cont_average.csv").is_file():
        return "emomusic"
    if is_vgmidi(root):
        return "vgmidi"
    if is_4q(root):
        return "4q"
    if emopia_dir(root) is not None:
        return "emopia"
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
        "annotations/dynamic_annotations.csv (PMEmo), annotations/vgmidi_raw_<n>.json (VGMIDI), annotations.csv with a Quadrant column (4Q), "
        "midi/Q<k>_<song>_<clip>.mid (EMOPIA) or annotations.csv / annotations/<listener>/<song>.csv "
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
    if format == "emomusic":
        from pdmer.data.deam import load_emomusic

        return load_emomusic(root, audio_dir=audio_dir)
    if format == "pmemo":
        from pdmer.data.pmemo import load_pmemo

        return load_pmemo(root, require_audio=False, audio_dir=audio_dir)
    if format == "vgmidi":
        from pdmer.data.vgmidi import load_vgmidi

        return load_vgmidi(root)
    if format == "4q":
        from pdmer.data.quadrants import load_4q

        return load_4q(root)
    if format == "emopia":
        from pdmer.data.quadrants import load_emopia

        return load_emopia(root)
    if format == "plain":
        from pdmer.data.plain import load_plain

        return load_plain(root, scale=scale, require_audio=False)
    raise InputError(f"unknown dataset format {format!r}; choose one of {', '.join(FORMATS)}")
