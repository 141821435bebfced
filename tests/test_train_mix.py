"""Training on a mix of sources: curves and song-level quadrants, drawn by weight; the sign loss; the config."""

import json

import numpy as np
import pytest
import soundfile
import torch
from click.testing import CliRunner

from pdmer.cli import main
from pdmer.errors import InputError
from pdmer.model.loss import song_sign_loss
from pdmer.train.config import TrainConfig
from pdmer.train.run import Run
from tests.test_train import RATE, dataset, cache, tone  # noqa: F401  (module fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::pdmer.data.curves.DataWarning")


@pytest.fixture(scope="module")
def quadrant_set(tmp_path_factory):
    """A 4Q-like folder: 8 clips, two per quadrant; train 5, val 3 (Q2, Q3, Q4: both signs of each dimension)."""
    root = tmp_path_factory.mktemp("mix") / "4q"
    (root / "audio").mkdir(parents=True)
    rows = []
    for index in range(8):
        song, quadrant = f"MT{index}", f"Q{index % 4 + 1}"
        soundfile.write(str(root / "audio" / f"{song}.wav"), tone(20 + index), RATE)
        rows.append(f"{song},{quadrant}\n")
    (root / "annotations.csv").write_text("Song,Quadrant\n" + "".join(rows))
    (root / "split.json").write_text(json.dumps({"train": [f"MT{i}" for i in range(5)], "val": ["MT5", "MT6", "MT7"]}))
    return root


def test_song_sign_loss_is_the_soft_hinge_of_the_clip_mean():
    right = torch.full((1, 4, 2), 0.5)
    wrong = torch.full((1, 4, 2), -0.5)
    signs = torch.ones(1, 2)
    assert float(song_sign_loss(right, signs)) == pytest.approx(0.1 * np.log1p(np.exp(-5)), rel=1e-5)
    assert float(song_sign_loss(wrong, signs)) == pytest.approx(0.1 * np.log1p(np.exp(5)), rel=1e-5)  # ~0.5
    # the mean over the clip counts, not each step: +0.9 and -0.1 average to +0.4
    mixed = torch.tensor([[[0.9, 0.9], [-0.1, -0.1]]])
    assert float(song_sign_loss(mixed, signs)) == pytest.approx(0.1 * np.log1p(np.exp(-4)), rel=1e-5)


def test_sources_parse_and_bad_entries_are_named():
    config = TrainConfig(sources=[{"data": "a", "weight": 3}, {"data": "b", "format": "4q", "val_split": "val"}])
    first, second = config.data_sources()
    assert (first.weight, second.weight, second.format, second.val_split) == (3.0, 1.0, "4q", "val")
    with pytest.raises(InputError, match="weight > 0"):
        TrainConfig(sources=[{"data": "a", "weight": 0}])
    with pytest.raises(InputError, match="unknown keys \\['wieght'\\]"):
        TrainConfig(sources=[{"data": "a", "wieght": 1}])
    with pytest.raises(InputError, match="curves must be one of mean, listeners"):
        TrainConfig(sources=[{"data": "a", "curves": "all"}])
    with pytest.raises(InputError, match="data or sources, not both"):
        TrainConfig(data="a", sources=[{"data": "b"}])


def test_a_mix_of_curves_and_quadrants_trains_and_validates_on_both(dataset, quadrant_set, cache, tmp_path):  # noqa: F811
    sources = [{"data": str(dataset), "weight": 1.0, "val_split": "val", "curves": "listeners"},
               {"data": str(quadrant_set), "weight": 3.0, "val_split": "val"}]
    config = TrainConfig(mode="dmer", sources=sources, cache=str(cache), steps=6, window=12, batch_size=4,
                         lr=1e-3, checkpoint_every=3, validate_every=3, device="cpu")
    run = Run(config, tmp_path / "run", resume=False, report=lambda _: None)
    assert [s.kind for s in run.sources] == ["curves", "levels"]
    assert {e.listener for e in run.sources[0].pool} == {"A", "B", "C", "D"}  # each listener's own curves
    levels = run.sources[1].pool
    assert len(levels) == 5 and all(torch.all(e.va.abs() == 1) for e in levels)
    last = run.train()
    assert last["step"] == 6
    assert {"val_tiny_score", "val_4Q_score", "val_4Q_valence_auc", "val_score"} <= set(last)
    assert last["val_score"] == pytest.approx((last["val_tiny_score"] + last["val_4Q_score"]) / 2, abs=1e-4)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 6 and all(np.isfinite(row["loss"]) for row in log)
    # the draw is by weight and fixed by (seed, step): resuming sees the same sources
    assert TrainConfig.from_toml(tmp_path / "run" / "config.toml") == config


def test_pdmer_mode_needs_a_source_with_listeners(quadrant_set, cache, tmp_path):
    config = TrainConfig(mode="pdmer", data=str(quadrant_set), cache=str(cache), steps=1, window=12, device="cpu")
    with pytest.raises(InputError, match="no dataset has per-listener curves"):
        Run(config, tmp_path / "run", resume=False, report=lambda _: None)


def test_train_takes_several_data_flags(dataset, quadrant_set, cache, tmp_path):  # noqa: F811
    result = CliRunner().invoke(main, ["train", "--data", str(dataset), "--data", str(quadrant_set), "--mode", "dmer",
                                       "--print-config"])
    assert result.exit_code == 0, result.output
    printed = tmp_path / "printed.toml"
    printed.write_text(result.output)
    config = TrainConfig.from_toml(printed)
    assert config.data == "" and [s.data for s in config.data_sources()] == [str(dataset), str(quadrant_set)]
