"""The embedded default model (pdmer/assets/default) and what uses it without being told: pdmer predict,
pdmer-stream, pdmer profile create. Its model card's real-clip numbers are re-measured with pdmer eval."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from conftest import shared_path
from pdmer.defaults import DEFAULT_MODEL_DIR, MUSIC_EXCERPT, default_checkpoint, default_model
from test_osc import MESSAGES_PER_FRAME, oscdump  # noqa: F401  (the fixture)

CARD = DEFAULT_MODEL_DIR / "MODEL_CARD.md"


def test_the_default_model_ships_small_and_consistent():
    from pdmer.export.runtime import OnnxModel
    from pdmer.model.checkpoint import load_model, read_metadata, weights_hash

    onnx_path, weights = default_model(), default_checkpoint()
    assert weights.stat().st_size <= 20e6 and onnx_path.stat().st_size <= 20e6
    onnx = OnnxModel(onnx_path, device="cpu")
    assert onnx.metadata["weights_sha256"] == weights_hash(load_model(weights))  # the ONNX is the export of these weights
    meta = read_metadata(weights)
    assert json.loads(meta["global_encoder"])["name"] == "musicnn" and "MODEL_CARD.md" in os.listdir(DEFAULT_MODEL_DIR)
    assert MUSIC_EXCERPT.is_file() and (MUSIC_EXCERPT.parent / "ATTRIBUTION.md").is_file()


def test_predict_without_a_model_uses_the_default(tmp_path):
    t = np.arange(int(6 * 22050)) / 22050
    clip = tmp_path / "clip.wav"
    soundfile.write(str(clip), (0.3 * np.cos(2 * np.pi * 330 * t)).astype(np.float32), 22050)  # sound from sample 0
    result = subprocess.run([sys.executable, "-m", "pdmer", "predict", str(clip)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()
    assert rows[0] == "time_s,valence,arousal" and len(rows) == 1 + 12
    values = np.array([[float(x) for x in row.split(",")[1:]] for row in rows[1:]])
    assert np.isfinite(values).all()


def test_the_defaults_curve_moves_with_the_music_at_every_step():
    """Issue 23, item 2: the within-song variation comes from the music at every 0.5 s step, not only when the
    global vector is refreshed (every 3 s): a staircase, where 5 steps in 6 change by less than 0.001, fails."""
    result = subprocess.run([sys.executable, "-m", "pdmer", "predict", str(MUSIC_EXCERPT)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    values = np.array([[float(x) for x in row.split(",")[1:]] for row in result.stdout.strip().splitlines()[1:]])
    assert len(values) >= 55  # 30 s of music
    changes = np.abs(np.diff(values, axis=0))
    assert ((changes > 1e-3).mean(axis=0) > 0.8).all(), (changes > 1e-3).mean(axis=0)


def test_stream_without_a_model_uses_the_default(oscdump):  # noqa: F811
    port, read = oscdump
    result = subprocess.run([sys.executable, "-m", "pdmer.streamer", "--source", str(MUSIC_EXCERPT), "--fast",
                             "--osc", f"127.0.0.1:{port}", "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "profile default" in result.stderr
    frames = [args for path, _, args in read(55 * MESSAGES_PER_FRAME) if path == "/pdmer/frame"]
    assert len(frames) >= 55  # 30 s of music, the clock starting at its first sound
    values = np.array([[float(a[1]), float(a[2])] for a in frames])
    assert np.isfinite(values).all() and values.std(axis=0).min() > 0  # the curve moves with the music


def card_numbers(section: str) -> dict[str, float]:
    """The numbers of the model card's machine-checked table ``section`` (rows `| model | V CCC | ... |`)."""
    text = CARD.read_text()
    block = text[text.index(f"<!-- {section} -->"):]
    block = block[: block.index("<!-- end -->")]
    numbers = {}
    for line in block.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"-?\d+\.\d+", cells[1]):
            numbers.update({f"{cells[0]}/{name}": float(value) for name, value in zip(
                ("valence_ccc", "valence_pcc", "valence_rmse", "arousal_ccc", "arousal_pcc", "arousal_rmse"),
                cells[1:])})
    return numbers


@pytest.mark.slow
def test_the_model_cards_real_clip_numbers_are_reproduced(tmp_path):
    """pdmer eval on the held-out real DEAM clips gives the card's numbers (the card quotes 3 decimals)."""
    deam = shared_path("data", "deam")
    audio = deam / "emomusic_2013_subset" / "clips_45s_mp3"
    card = card_numbers("real-clips")
    report = tmp_path / "eval.json"
    result = subprocess.run([sys.executable, "-m", "pdmer", "eval", str(default_checkpoint()), "--data", str(deam),
                             "--audio-dir", str(audio), "--split", "all", "--only-with-audio", "--task", "dmer",
                             "--songs", "12,13,17", "--json", str(report), "--cache", str(tmp_path / "cache")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    scores = json.loads(report.read_text())["tasks"]["dmer"]["mean"]
    for name, value in scores.items():
        assert abs(card[f"default model/{name}"] - value) <= 6e-4, (name, value, card)
