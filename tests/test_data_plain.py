"""pdmer's plain dataset format: both annotation layouts, scales, resampling, and every bad input named."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from pdmer.data import MEAN, Curve, DataWarning, load_plain, write_plain
from pdmer.data.load import detect_format, load_dataset
from pdmer.errors import InputError


def tone(seconds: float, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def write_audio(root, song: str, seconds: float) -> None:
    (root / "audio").mkdir(parents=True, exist_ok=True)
    soundfile.write(root / "audio" / f"{song}.wav", tone(seconds), 8000)


def write_long_csv(root, rows: list[str], header: str = "song,listener,time_s,valence,arousal") -> None:
    (root / "annotations.csv").write_text("\n".join([header, *rows]) + "\n")


def test_round_trip_per_listener_files(tmp_path):
    rng = np.random.default_rng(1)
    curves = [
        Curve(song, who, 0.0, np.tanh(rng.normal(size=(20, 2))))
        for song in ("a", "b") for who in ("ann", "bo")
    ]
    audio = {"a": (tone(10.0), 8000), "b": (tone(10.0), 8000)}
    splits = {"train": {"songs": ["a"], "listeners": ["ann"]}, "test": {"songs": ["b"]}}
    root = write_plain(tmp_path / "mine", curves, audio, name="mine", splits=splits, extra={"note": "x"})
    assert detect_format(root) == "plain"
    data = load_dataset(root)
    assert data.name == "mine" and data.listeners == ["ann", "bo"] and data.splits == splits
    loaded = {(c.song, c.listener): c for c in data.curves}
    for curve in curves:
        np.testing.assert_allclose(loaded[curve.song, curve.listener].va, curve.va, atol=1e-6)
    assert [c.listener for c in data.split("train").curves] == ["ann"]
    mean = {c.song: c for c in data.mean_curves()}["a"]
    assert mean.listener == MEAN
    np.testing.assert_allclose(mean.va, (loaded["a", "ann"].va + loaded["a", "bo"].va) / 2, atol=1e-6)
    with pytest.raises(InputError, match="already exists"):
        write_plain(root, curves, audio, name="mine")


def test_interrupted_write_leaves_nothing(tmp_path):
    curves = [Curve("a", "ann", 0.0, np.zeros((4, 2)))]
    with pytest.raises(FileNotFoundError):
        write_plain(tmp_path / "out", curves, {"a": tmp_path / "missing.wav"}, name="x")
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor its staging folder


def test_long_csv_scales_and_resampling(tmp_path):
    write_audio(tmp_path, "s1", 5.0)
    # 1-9 scale, 1 s steps from 0.5 s, rows of two listeners interleaved
    rows = []
    for second in range(5):
        rows.append(f"s1,ann,{0.5 + second},{1 + 2 * second},5")
        rows.append(f"s1,bo,{0.5 + second},9,{9 - 2 * second}")
    write_long_csv(tmp_path, rows)
    data = load_plain(tmp_path, scale="[1,9]")
    ann = next(c for c in data.curves if c.listener == "ann")
    assert ann.start_s == 0.5 and len(ann.va) == 9  # 0.5, 1.0, ..., 4.5
    # valence 1 -> -1, 9 -> +1, linear in between (interpolated on the 0.5 s grid); arousal 5 -> 0
    np.testing.assert_allclose(ann.va[:, 0], np.linspace(-1, 1, 9), atol=1e-6)
    np.testing.assert_allclose(ann.va[:, 1], 0, atol=1e-6)
    with pytest.raises(InputError, match=r"outside the declared scale \[-1,1\]; declare the scale"):
        load_plain(tmp_path)  # 1-9 values read as [-1, 1]
    (tmp_path / "dataset.json").write_text(json.dumps({"scale": "[1,9]"}))
    assert len(load_plain(tmp_path).curves) == 2  # the scale from dataset.json


def test_unit_interval_scale(tmp_path):
    write_audio(tmp_path, "s1", 3.0)
    write_long_csv(tmp_path, ["s1,ann,0.0,0.0,1.0", "s1,ann,0.5,0.5,0.25", "s1,ann,1.0,1.0,0.5"])
    curve = load_plain(tmp_path, scale="[0,1]").curves[0]
    np.testing.assert_allclose(curve.va, [[-1, 1], [0, -0.5], [1, 0]], atol=1e-6)


@pytest.mark.parametrize(
    "rows, message",
    [
        (["s1,ann,0.0,0.1,0.2", "s1,ann,0.5,nan,0.2"], r"annotations\.csv:3: valence is 'nan'"),
        (["s1,ann,0.0,0.1,0.2", "s1,ann,0.5,,0.2"], r"annotations\.csv:3: valence '' is not a number"),
        (["s1,ann,0.0,0.1,0.2", "s1,ann,0.5,0.1,0.2", "s1,ann,0.5,0.3,0.2"],
         r"duplicate row for song s1, listener ann, time 0.5 s at lines 3 and 4"),
        (["s1,ann,0.0,0.1,0.2"], "at least 2 time points"),
        (["s1,ann,-1.0,0.1,0.2", "s1,ann,0.5,0.1,0.2"], "negative time"),
    ],
)
def test_bad_long_csv_rows_are_named(tmp_path, rows, message):
    write_audio(tmp_path, "s1", 5.0)
    write_long_csv(tmp_path, rows)
    with pytest.raises(InputError, match=message):
        load_plain(tmp_path)


def test_per_file_times_must_increase(tmp_path):
    write_audio(tmp_path, "s1", 5.0)
    folder = tmp_path / "annotations" / "ann"
    folder.mkdir(parents=True)
    (folder / "s1.csv").write_text("time_s,valence,arousal\n0.0,0,0\n1.0,0,0\n0.5,0,0\n")
    with pytest.raises(InputError, match=r"s1\.csv:4: time 0.5 s comes after 1.0 s \(line 3\); sort rows"):
        load_plain(tmp_path)
    (folder / "s1.csv").write_text("time,valence\n0.0,0\n")
    with pytest.raises(InputError, match="missing column"):
        load_plain(tmp_path)


def test_audio_problems(tmp_path):
    write_long_csv(tmp_path, ["s1,ann,0.0,0,0", "s1,ann,9.5,0,0"])
    with pytest.raises(InputError, match=r"no audio for song\(s\) s1"):
        load_plain(tmp_path)
    assert load_plain(tmp_path, require_audio=False).songs["s1"].audio is None
    write_audio(tmp_path, "s1", 4.0)
    with pytest.raises(InputError, match=r"runs to 10.0 s but .*s1.wav is only 4.0 s long"):
        load_plain(tmp_path)
    write_audio(tmp_path, "s1", 30.0)
    with pytest.warns(DataWarning, match="end more than 5 s before their audio"):
        load_plain(tmp_path)


def test_split_naming_unknown_songs(tmp_path):
    write_audio(tmp_path, "s1", 3.0)
    write_long_csv(tmp_path, ["s1,ann,0.0,0,0", "s1,ann,1.0,0,0"])
    (tmp_path / "dataset.json").write_text(json.dumps({"splits": {"test": {"songs": ["s1", "zz"]}}}))
    with pytest.raises(InputError, match="split 'test' names unknown song"):
        load_plain(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_plain(tmp_path)


def test_cli_data_summary_and_errors(tmp_path):
    from click.testing import CliRunner

    from pdmer.cli import main

    write_audio(tmp_path, "s1", 3.0)
    write_long_csv(tmp_path, ["s1,ann,0.0,0.1,0.2", "s1,ann,1.0,0.3,0.2"])
    result = CliRunner().invoke(main, ["data", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["songs"] == summary["songs_with_audio"] == summary["listeners"] == 1
    assert summary["labels_per_curve"] == {"min": 3, "median": 3, "max": 3}
    write_long_csv(tmp_path, ["s1,ann,0.0,0.1,0.2", "s1,ann,1.0,3,0.2"])
    result = CliRunner().invoke(main, ["data", str(tmp_path)])
    assert result.exit_code == 2 and "outside the declared scale [-1,1]" in result.output


# One curve as each spreadsheet dialect saves it, and its points: Excel's "CSV UTF-8" (a byte-order mark), ';'
# between cells, ';' with decimal commas (Excel on a German system: BOM and CRLF too), CRLF with spaces and blanks.
POINTS = [(0.0, 0.5, 0.25), (0.5, -0.1, 0.0), (1.25, 0.75, -0.5), (2.0, 0.125, 1.0)]
DIALECTS = {
    "bom": "\ufefftime_s,valence,arousal\n0,0.5,0.25\n0.5,-0.1,0\n1.25,0.75,-0.5\n2,0.125,1\n",
    "semicolon": "time_s;valence;arousal\n0;0.5;0.25\n0.5;-0.1;0\n1.25;0.75;-0.5\n2;0.125;1\n",
    "decimal comma": "\ufefftime_s;valence;arousal\r\n0;0,5;0,25\r\n0,5;-0,1;0\r\n1,25;0,75;-0,5\r\n2;0,125;1\r\n",
    "crlf": "\r\n time_s , valence , arousal \r\n 0 , 0.5 , 0.25\r\n0.5, -0.1,0\r\n1.25 ,0.75,-0.5\r\n\r\n"
            "2,0.125,1\r\n \r\n",
}
REFUSED = {  # the bytes of a file still refused, and what its message names
    "unknown columns": (b"Zeit;Valenz;Erregung\n0;0,5;0,5\n", ["missing column(s) time_s, valence, arousal",
                        "Found: line 1 'Zeit;Valenz;Erregung', delimiter ';' detected, "
                        "columns ['Zeit', 'Valenz', 'Erregung']"]),
    "decimal commas between commas": (b"time_s,valence,arousal\n0,0,5,0,5\n0.5,0.5,0.5\n",
                                      ["s1.csv:2: 5 cells where the header has 3 (delimiter ','); a decimal comma"]),
    "long first line": (b"time_s|valence|arousal|" + b"x" * 100 + b"\n0|0|0\n",
                        ["Found: line 1 'time_s|valence|arousal|xxx", "xxx..., delimiter ',' detected, "
                         "columns ['time_s|valence|arousal|xxx", "xxx...\n"]),
    "utf-16": ("time_s\tvalence\tarousal\n".encode("utf-16"), ["is UTF-16 text; save it as \"CSV UTF-8\""]),
}


def write_curve_file(path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_reader_reads_each_spreadsheet_dialect(tmp_path, dialect):
    from pdmer.data.plain import read_points

    path = tmp_path / "curve.csv"
    write_curve_file(path, DIALECTS[dialect])
    assert [point[1:] for point in read_points(path)] == POINTS


def test_pdmer_data_reads_every_dialect_as_the_same_curve(tmp_path):
    """The real `pdmer data` on a dataset whose listeners saved one curve in each dialect, and a long annotations.csv
    with ';' and decimal commas: every curve is read, and all are the same."""
    write_audio(tmp_path, "s1", 3.0)
    for dialect, text in DIALECTS.items():
        write_curve_file(tmp_path / "annotations" / dialect.replace(" ", "-") / "s1.csv", text)
    rows = [f"s1;long;{t};{v};{a}".replace(".", ",") for t, v, a in POINTS]
    (tmp_path / "annotations.csv").write_bytes("\r\n".join(["\ufeffsong;listener;time_s;valence;arousal", *rows])
                                               .encode())
    result = subprocess.run([sys.executable, "-m", "pdmer", "data", str(tmp_path), "--json"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["listeners"] == len(DIALECTS) + 1 and summary["labels_per_curve"]["min"] == 5  # 0, 0.5, .. 2 s
    curves = load_plain(tmp_path).curves
    expected = np.interp(np.arange(0, 2.5, 0.5), [p[0] for p in POINTS], [p[1] for p in POINTS])
    for curve in curves:
        np.testing.assert_allclose(curve.va[:, 0], expected, atol=1e-12, err_msg=curve.source)


@pytest.mark.parametrize("case", REFUSED)
def test_pdmer_data_names_what_it_found_in_a_refused_file(tmp_path, case):
    text, fragments = REFUSED[case]
    write_audio(tmp_path, "s1", 3.0)
    write_curve_file(tmp_path / "annotations" / "ann" / "s1.csv", text)
    before = sorted(tmp_path.rglob("*"))
    result = subprocess.run([sys.executable, "-m", "pdmer", "data", str(tmp_path)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert "x" * 80 not in result.stderr  # the first line and the columns are shown cut short
    assert sorted(tmp_path.rglob("*")) == before  # nothing written beside the dataset


def test_one_writer_keeps_the_predict_format_and_writes_atomically(tmp_path):
    from pdmer.data.plain import read_points, write_curve_csv
    from pdmer.export.predict import SongPrediction

    times, va = np.array([0.25, 0.75, 1.25]), np.array([[0.1, np.nan], [-0.5, 1 / 3], [1.0, -1.0]], np.float32)
    text = "time_s,valence,arousal\n0.250,0.100000,nan\n0.750,-0.500000,0.333333\n1.250,1.000000,-1.000000\n"
    assert SongPrediction("s", "m", times, va).to_csv() == text
    path = tmp_path / "out" / "curve.csv"
    write_curve_csv(path, times, va)
    assert path.read_bytes() == text.encode()
    with pytest.raises(ValueError):  # rows of three values: a failed write leaves the old file and no temporary
        write_curve_csv(path, times, np.zeros((3, 3)))
    assert path.read_bytes() == text.encode() and list(path.parent.iterdir()) == [path]
    write_curve_csv(path, times[1:], va[1:])
    assert [p[1:] for p in read_points(path)] == [(0.75, -0.5, 0.333333), (1.25, 1.0, -1.0)]
