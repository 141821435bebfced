"""Shared test fixtures: a seeded generator and the ../shared reference data (skipped cleanly when absent)."""

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def musicnn_inputs() -> dict[str, str]:
    """Checkpoint metadata recording today's default global encoder (musicnn on grid patches) and windows."""
    import json
    from dataclasses import asdict

    from pdmer.data.features import GlobalWindows
    from pdmer.model.encoders import MusicnnEncoderConfig

    return {"global_encoder": json.dumps({"name": "musicnn", "options": asdict(MusicnnEncoderConfig())}),
            "global_windows": json.dumps(asdict(GlobalWindows()))}


MUSICNN_INPUTS = musicnn_inputs()


def shared_path(*parts: str) -> Path:
    """Path under ../shared, or skip the test: a user's clone has no ../shared beside it."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: reference fixtures live in ../shared beside the project root (developer/CI only)")
    return path


@pytest.fixture(scope="session")
def musicnn_wheel() -> Path:
    """The musicnn 0.1.0 wheel (./test.sh downloads it from PyPI into .cache/wheels), or skip."""
    path = Path(os.environ.get("PDMER_MUSICNN_WHEEL", ROOT / ".cache" / "wheels" / "musicnn-0.1.0-py3-none-any.whl"))
    if not path.is_file():
        pytest.skip(f"musicnn wheel not found at {path}: get it with `pip download --no-deps musicnn==0.1.0`")
    return path


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)
