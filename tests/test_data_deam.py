"""DEAM loader: the real averaged files in ../shared (when present) and SYNTHETIC fixtures in the official layout.

The per-rater files are not available anywhere reachable, so their fixtures are generated here; every generated
value is made up and named so.
"""

import warnings

import numpy as np
import pytest
import soundfile

from pdmer.data import MEAN, DataWarning, load_deam, load_emomusic, with_audio
from pdmer.data.deam import AVERAGED, PER_RATER, read_sample_table
from pdmer.data.load import detect_format, load_dataset
from pdmer.errors import InputError
from tests.conftest import shared_path


def sample_header(count: int, start_ms: int = 15000) -> list[str]:
    return [f"sample_{start_ms + 500 * i}ms" for i in range(count)]


def write_table(path, key_column, rows: dict, width: int) -> None:
    """A DEAM-style table: ``rows`` maps key -> values; shorter rows are padded with empty cells, as DEAM's are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(([key_column] if key_column else []) + sample_header(width))]
    for key, values in rows.items():
        cells = [f"{v:.6f}" for v in values] + [""] * (width - len(values))
        lines.append(",".join(([str(key)] if key_column else []) + cells))
    path.write_text("\n".join(lines) + "\n")


def write_synthetic_deam_fixture(root, *, rng=None):
    """A tiny made-up DEAM in the official layout: averaged curves for songs 7, 1500, 2001 (a 'full song' with
    80 labels), per-rater files (anonymous for song 7, WorkerIds for 1500 and 2001, one flat rater), and audio."""
    rng = rng or np.random.default_rng(0)
    annotations = root / "DEAM_Annotations" / "annotations"
    lengths = {"7": 60, "1500": 60, "2001": 80}
    curves = {dim: {s: np.tanh(rng.normal(size=n).cumsum() * 0.05) for s, n in lengths.items()}
              for dim in ("valence", "arousal")}
    for dim in ("valence", "arousal"):
        write_table(annotations / AVERAGED / f"{dim}.csv", "song_id", curves[dim], width=80)
    raters = {
        "7": {"1": 0.1, "2": -0.2},  # anonymous (id <= 1000): rows, no WorkerId
        "1500": {"W_alice": 0.3, "W_bob": -0.1, "W_flat": None},
        "2001": {"W_alice": 0.2, "W_carol": 0.0},
    }
    for song, workers in raters.items():
        for dim in ("valence", "arousal"):
            rows = {}
            for worker, offset in workers.items():
                if offset is None:  # flat over its first 60 labels: the authors' filter drops it
                    rows[worker] = np.full(lengths[song], 0.25)
                else:
                    rows[worker] = np.clip(curves[dim][song] + offset + rng.normal(0, 0.05, lengths[song]), -1, 1)
            key_column = "WorkerId" if int(song) > 1000 else None
            table = rows if key_column else {i: v for i, v in enumerate(rows.values())}
            write_table(annotations / PER_RATER / dim / f"{song}.csv", key_column, table, width=lengths[song])
    audio = root / "DEAM_audio" / "MEMD_audio"
    audio.mkdir(parents=True)
    for song, n in lengths.items():
        seconds = 15 + n / 2
        t = np.arange(int(seconds * 8000)) / 8000
        soundfile.write(audio / f"{song}.mp3", 0.2 * np.sin(2 * np.pi * 220 * t), 8000)
    return curves


@pytest.fixture
def deam_fixture(tmp_path):
    curves = write_synthetic_deam_fixture(tmp_path)
    return tmp_path, curves


def test_averaged_curves_splits_and_audio(deam_fixture):
    root, truth = deam_fixture
    data = load_deam(root)
    assert detect_format(root) == "deam"
    assert list(data.songs) == ["7", "1500", "2001"]  # numeric order
    assert all(c.listener == MEAN and c.start_s == 15.0 for c in data.curves)
    by_song = {c.song: c for c in data.curves}
    assert len(by_song["2001"].va) == 80 and len(by_song["7"].va) == 60  # padding cells are not labels
    np.testing.assert_allclose(by_song["1500"].va[:, 0], truth["valence"]["1500"], atol=1e-6)
    np.testing.assert_allclose(by_song["1500"].va[:, 1], truth["arousal"]["1500"], atol=1e-6)
    assert data.splits["train"]["songs"] == ["7", "1500"]
    assert data.splits["personalized"]["songs"] == ["1500"]
    assert data.splits["test"]["songs"] == ["2001"]
    assert all(s.audio is not None and s.audio.suffix == ".mp3" for s in data.songs.values())
    audio, curve = next(iter(data))
    assert audio == data.songs["7"].audio and curve.song == "7"


def test_per_rater_curves_by_worker_id_with_flat_filter(deam_fixture):
    root, _ = deam_fixture
    with pytest.warns(DataWarning, match="dropped 2 flat"):  # W_flat: its valence and arousal rows
        data = load_deam(root, raters=True)
    listeners = data.listeners
    assert {"W_alice", "W_bob", "W_carol"} <= set(listeners) and "W_flat" not in listeners
    assert sum(listener.startswith("anonymous-7-") for listener in listeners) == 2  # no WorkerId: one id per row
    tasks = data.by_listener()
    assert sorted(c.song for c in tasks["W_alice"]) == ["1500", "2001"]
    assert data.split("test").listeners == ["W_alice", "W_carol"]
    # the personalized split holds only songs whose raters have WorkerIds
    assert all(not c.listener.startswith("anonymous") for c in data.split("personalized").curves)
    # with the filter off the flat rater stays
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        assert "W_flat" in load_deam(root, raters=True, flat_threshold=None).listeners


def test_mean_curves_prefer_the_dataset_average(deam_fixture):
    root, truth = deam_fixture
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = load_deam(root, raters=True)
    means = {c.song: c for c in data.mean_curves()}
    np.testing.assert_allclose(means["2001"].va[:, 1], truth["arousal"]["2001"], atol=1e-6)
    # without the averaged curves, the mean over raters stands in
    raters_only = data.select(listeners=["W_alice", "W_carol"])
    raters_only.curves = [c for c in raters_only.curves if c.listener != MEAN]
    mean = {c.song: c for c in raters_only.mean_curves()}["2001"]
    alice, carol = (next(c for c in data.curves if c.song == "2001" and c.listener == w) for w in ("W_alice", "W_carol"))
    np.testing.assert_allclose(mean.va, (alice.va + carol.va) / 2, atol=1e-6)


def test_nan_inside_a_curve_names_file_and_line(deam_fixture):
    root, _ = deam_fixture
    path = root / "DEAM_Annotations" / "annotations" / AVERAGED / "arousal.csv"
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[10] = ""
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"arousal\.csv:3: empty or NaN cell at sample_19500ms"):
        load_deam(root)


def test_missing_audio_is_reported(deam_fixture):
    root, _ = deam_fixture
    (root / "DEAM_audio" / "MEMD_audio" / "1500.mp3").unlink()
    data = load_deam(root)
    assert data.songs["1500"].audio is None
    with pytest.raises(InputError, match=r"audio missing for 1 song\(s\): 1500"):
        data.require_audio()
    with pytest.raises(InputError, match="audio missing"):
        load_deam(root, require_audio=True)
    assert list(with_audio(data).songs) == ["7", "2001"]


def test_curve_longer_than_its_audio_is_an_error(deam_fixture):
    root, _ = deam_fixture
    t = np.arange(8000 * 20) / 8000  # 20 s: the curve runs to 45 s
    soundfile.write(root / "DEAM_audio" / "MEMD_audio" / "7.mp3", 0.1 * np.sin(2 * np.pi * 330 * t), 8000)
    with pytest.raises(InputError, match="runs to 45.0 s but .*7.mp3 is only 20"):
        load_deam(root)


def test_not_a_deam_folder(tmp_path):
    with pytest.raises(InputError, match="not a DEAM folder"):
        load_deam(tmp_path)
    with pytest.raises(InputError, match="cannot tell the dataset layout"):
        load_dataset(tmp_path)


# --- the real files in ../shared/data/deam ---


def test_real_deam_averaged_curves():
    root = shared_path("data", "deam")
    data = load_deam(root, audio_dir=root / "emomusic_2013_subset" / "clips_45s_mp3")
    assert len(data.songs) == 1802 and len(data.curves) == 1802
    lengths = {c.song: len(c.va) for c in data.curves}
    assert all(lengths[s] == 60 for s in data.splits["train"]["songs"])  # the 1744 clips: 15.0-44.5 s
    # the longest full song: 1224 arousal labels, 1223 valence labels; a curve holds the labels both dimensions have
    folder = root / "annotations" / AVERAGED
    raw = {dim: max(len(v) for *_, v in read_sample_table(folder / f"{dim}.csv", key_column="song_id"))
           for dim in ("valence", "arousal")}
    assert raw == {"valence": 1223, "arousal": 1224}
    assert max(lengths.values()) == 1223
    assert len(data.splits["train"]["songs"]) == 1744 and len(data.splits["test"]["songs"]) == 58
    values = np.concatenate([c.va for c in data.curves])
    assert values.min() >= -1 and values.max() <= 1


def test_real_clips_pair_with_their_curves():
    root = shared_path("data", "deam")
    clips = with_audio(load_deam(root, audio_dir=root / "emomusic_2013_subset" / "clips_45s_mp3"))
    assert sorted(clips.songs, key=int) == ["2", "3", "4", "5", "7", "8", "10", "12", "13", "17"]
    for curve in clips.curves:
        info = soundfile.info(str(clips.songs[curve.song].audio))
        assert 44.5 <= info.frames / info.samplerate <= 45.5  # 45 s clips: labels cover 15-45 s
        assert (curve.start_s, len(curve.va)) == (15.0, 60)
    # the MediaEval 2013 files hold the same averages (rounded): the pairing is to the right songs
    emomusic = {c.song: c for c in load_emomusic(root / "emomusic_2013_subset").curves}
    for curve in clips.curves:
        np.testing.assert_allclose(emomusic[curve.song].va[:60], curve.va, atol=1e-5)
        assert emomusic[curve.song].std is not None


def test_per_rater_only_copy(deam_fixture):
    import shutil

    root, _ = deam_fixture
    shutil.rmtree(root / "DEAM_Annotations" / "annotations" / AVERAGED.parent)
    assert detect_format(root) == "deam"
    with pytest.warns(DataWarning, match="flat"):
        data = load_deam(root, raters=True)
    assert MEAN not in {c.listener for c in data.curves} and "W_alice" in data.listeners
