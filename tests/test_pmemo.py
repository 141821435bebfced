"""load_pmemo on small SYNTHETIC fixtures shaped like the PMEmo2019 release (made-up values, sine-tone audio)."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pdmer.data import MEAN, DataWarning
from pdmer.data.pmemo import BASELINE_TEST_SONGS, load_pmemo, read_pmemo_metadata, read_pmemo_static
from pdmer.errors import InputError

RATE = 8000
FIRST_FRAME_TIME = 15.5  # as in the release: the first 15 s of annotations were removed
AUDIO_FORMAT = "MP3" if "MP3" in soundfile.available_formats() else "WAV"


def synthetic_arousal(song: int, k: int) -> float:
    return round(0.2 + 0.01 * k + 0.001 * song, 6)


def synthetic_valence(song: int, k: int) -> float:
    return round(0.9 - 0.01 * k - 0.001 * song, 6)


def synthetic_std(song: int, k: int) -> tuple[float, float]:
    return round(0.1 + 0.002 * k, 6), round(0.3 - 0.002 * k, 6)


def write_synthetic_pmemo_fixture(root: Path, clips: dict[int, float] | None = None, *,
                                  audio_seconds: dict[int, float] | None = None) -> Path:
    """A tiny SYNTHETIC stand-in for the PMEmo2019 folder (not real data): ``clips`` maps musicId to the chorus clip's
    length; annotations run every 0.5 s from frameTime 15.5 to the length rounded down to 0.5 s, as in the release.
    ``audio_seconds`` overrides the length of the audio actually written (to make a clip too short)."""
    clips = clips or {1: 19.2, 4: 18.0}
    audio_seconds = {**clips, **(audio_seconds or {})}
    (root / "annotations").mkdir(parents=True)
    (root / "chorus").mkdir()
    dynamic = ["musicId,frameTime,Arousal(mean),Valence(mean)"]
    dynamic_std = ["musicId,frameTime,Arousal(std),Valence(std)"]
    static = ["musicId,Arousal(mean),Valence(mean)"]
    static_std = ["musicId,Arousal(std),Valence(std)"]
    metadata = ["musicId,fileName,title,artist,album,duration,chorus_start_time,chorus_end_time"]
    for song, seconds in clips.items():
        for k, time in enumerate(np.arange(FIRST_FRAME_TIME, np.floor(seconds * 2) / 2 + 1e-9, 0.5)):
            dynamic.append(f"{song},{time:.1f},{synthetic_arousal(song, k)},{synthetic_valence(song, k)}")
            dynamic_std.append(f"{song},{time:.1f},{synthetic_std(song, k)[0]},{synthetic_std(song, k)[1]}")
        static.append(f"{song},0.625,0.375")
        static_std.append(f"{song},0.1,0.2")
        metadata.append(f"{song},{song}.mp3,Synthetic Song {song},Synthetic Artist,Synthetic Album,{seconds},"
                        f"01:0{song},01:{20 + song}")
        samples = np.arange(round(audio_seconds[song] * RATE)) / RATE
        soundfile.write(str(root / "chorus" / f"{song}.mp3"), 0.2 * np.sin(2 * np.pi * 440 * samples), RATE,
                        format=AUDIO_FORMAT)  # named .mp3 as in the layout whatever the container
    for name, lines in [("dynamic_annotations", dynamic), ("dynamic_annotations_std", dynamic_std),
                        ("static_annotations", static), ("static_annotations_std", static_std)]:
        (root / "annotations" / f"{name}.csv").write_text("\n".join(lines) + "\n")
    (root / "metadata.csv").write_text("\n".join(metadata) + "\n")
    return root


def edit_dynamic(root: Path, edit) -> Path:
    """Rewrite dynamic_annotations.csv through ``edit(lines)``; lines[0] is the header (file line 1)."""
    path = root / "annotations" / "dynamic_annotations.csv"
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def pmemo(tmp_path) -> Path:
    return write_synthetic_pmemo_fixture(tmp_path / "PMEmo2019")


def test_values_scale_std_and_time_alignment(pmemo):
    dataset = load_pmemo(pmemo)
    assert dataset.name == "PMEmo" and sorted(dataset.songs) == ["1", "4"] and dataset.listeners == []
    curve = {c.song: c for c in dataset.curves}["1"]
    assert curve.listener == MEAN
    assert len(curve.va) == 8  # frameTime 15.5 .. 19.0 for a 19.2 s clip
    assert curve.start_s == 15.0 and curve.end_s == 19.0  # row at t labels [t - 0.5, t)
    k = np.arange(8)
    arousal, valence = 0.2 + 0.01 * k + 0.001, 0.9 - 0.01 * k - 0.001
    np.testing.assert_allclose(curve.va[:, 0], 2 * valence - 1, atol=1e-6)
    np.testing.assert_allclose(curve.va[:, 1], 2 * arousal - 1, atol=1e-6)
    np.testing.assert_allclose(curve.std, 2 * np.stack([0.3 - 0.002 * k, 0.1 + 0.002 * k], axis=1), atol=1e-6)
    assert curve.va.dtype == np.float32 and curve.std.dtype == np.float32
    assert dataset.songs["1"].audio == pmemo / "chorus" / "1.mp3"
    assert "dynamic_annotations.csv" in curve.source and "musicId 1" in curve.source


def test_frame_time_start_option(pmemo):
    curve = load_pmemo(pmemo, frame_time="start").curves[0]
    assert curve.start_s == 15.5 and curve.end_s == 19.5
    with pytest.raises(InputError, match="frame_time"):
        load_pmemo(pmemo, frame_time="middle")


def test_root_may_be_the_folder_holding_pmemo2019(pmemo):
    assert sorted(load_pmemo(pmemo.parent).songs) == ["1", "4"]
    with pytest.raises(InputError, match="not a PMEmo2019 folder"):
        load_pmemo(pmemo / "chorus")


def test_missing_audio_lists_ids_or_loads_without(pmemo):
    (pmemo / "chorus" / "4.mp3").unlink()
    with pytest.raises(InputError, match=r"musicId 4;.*require_audio=False"):
        load_pmemo(pmemo)
    dataset = load_pmemo(pmemo, require_audio=False)
    assert dataset.songs["4"].audio is None and len(dataset.curves) == 2


def test_nan_cell_names_file_line_and_column(pmemo):
    def put_nan(lines):
        song, time, arousal, _ = lines[4].split(",")
        lines[4] = f"{song},{time},{arousal},nan"

    path = edit_dynamic(pmemo, put_nan)
    with pytest.raises(InputError, match=rf"{path}:5: Valence\(mean\)"):
        load_pmemo(pmemo)


def test_empty_cell_names_the_line(pmemo):
    def empty(lines):
        lines[2] = ",".join(lines[2].split(",")[:2] + ["", "0.5"])

    with pytest.raises(InputError, match=r"dynamic_annotations.csv:3: Arousal\(mean\) '' is not a number"):
        load_pmemo(edit_dynamic(pmemo, empty).parent.parent)


def test_duplicate_row_names_both_lines(pmemo):
    with pytest.raises(InputError, match="duplicate rows for musicId 1, frameTime 16 at lines 3 and 4"):
        load_pmemo(edit_dynamic(pmemo, lambda lines: lines.insert(3, lines[2])).parent.parent)


def test_rows_out_of_time_order(pmemo):
    def swap(lines):
        lines[3], lines[4] = lines[4], lines[3]

    with pytest.raises(InputError, match=r"dynamic_annotations.csv:5: musicId 1, frameTime 16.5 comes after "
                                         r"frameTime 17 \(line 4\); sort"):
        load_pmemo(edit_dynamic(pmemo, swap).parent.parent)


def test_missing_half_seconds_in_the_middle(pmemo):
    def drop(lines):
        del lines[3:5]  # frameTime 16.5 and 17.0 of song 1

    with pytest.raises(InputError, match=r"musicId 1 has no rows for frameTime 16.5 \.\. 17 \(between lines 3 and 4\)"):
        load_pmemo(edit_dynamic(pmemo, drop).parent.parent)


def test_off_grid_and_out_of_scale_values(pmemo):
    lines = (pmemo / "annotations" / "dynamic_annotations.csv").read_text().splitlines()

    def off_grid(rows):
        rows[1] = rows[1].replace(",15.5,", ",15.3,")

    with pytest.raises(InputError, match="dynamic_annotations.csv:2: frameTime 15.3 is not a multiple of 0.5 s"):
        load_pmemo(edit_dynamic(pmemo, off_grid).parent.parent)

    def too_high(rows):
        rows[:] = lines
        rows[6] = ",".join(rows[6].split(",")[:3] + ["1.25"])

    with pytest.raises(InputError, match=r"dynamic_annotations.csv:7: Valence\(mean\) 1.25 is a value outside"):
        load_pmemo(edit_dynamic(pmemo, too_high).parent.parent)


def test_curve_longer_than_its_audio(tmp_path):
    root = write_synthetic_pmemo_fixture(tmp_path / "PMEmo2019", {1: 22.0}, audio_seconds={1: 17.0})
    with pytest.raises(InputError, match=r"runs to 22.0 s but .*1\.mp3 is only 17.0 s long"):
        load_pmemo(root)


def test_std_file_rows_must_match_and_may_be_absent(pmemo):
    std_path = pmemo / "annotations" / "dynamic_annotations_std.csv"
    lines = std_path.read_text().splitlines()
    std_path.write_text("\n".join(lines[:-1]) + "\n")  # song 4 loses its last std row
    with pytest.raises(InputError, match="musicId 4 covers frameTime 15.5 .. 17.5 .* covers frameTime 15.5 .. 18"):
        load_pmemo(pmemo)
    std_path.unlink()
    with pytest.warns(DataWarning, match="no std"):
        dataset = load_pmemo(pmemo)
    assert all(c.std is None for c in dataset.curves)


def test_no_warnings_on_a_clean_release(pmemo):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_pmemo(pmemo)


def test_metadata_chorus_bounds_and_static_labels(pmemo):
    info = read_pmemo_metadata(pmemo)
    assert info["4"].chorus_start_s == 64.0 and info["4"].chorus_end_s == 84.0
    assert info["4"].duration_s == 18.0 and info["4"].file_name == "4.mp3" and info["4"].title == "Synthetic Song 4"
    static = read_pmemo_static(pmemo)
    np.testing.assert_allclose(static["1"].va, [-0.25, 0.25])  # (valence, arousal) from [0,1] 0.375, 0.625
    np.testing.assert_allclose(static["1"].std, [0.4, 0.2])


def test_baseline_splits(tmp_path):
    root = write_synthetic_pmemo_fixture(tmp_path / "PMEmo2019", {1: 17.0, 63: 17.0})
    dataset = load_pmemo(root)
    assert "63" in BASELINE_TEST_SONGS and len(BASELINE_TEST_SONGS) == 77
    assert list(dataset.split("baseline-test").songs) == ["63"]
    assert list(dataset.split("baseline-train").songs) == ["1"]


def test_loader_does_not_import_torch():
    code = "import sys, pdmer.data.pmemo; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
