"""The real-data loaders (VGMIDI, 4Q, EMOPIA), MIDI rendering and the real evaluations, on fixtures made here; and
the summaries of the datasets in ../shared/data (skipped when it is absent)."""

import json
import shutil
import warnings

import mido
import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from pdmer.cli import main
from pdmer.data.curves import MEAN, DataWarning
from pdmer.data.load import detect_format
from pdmer.data.quadrants import load_4q, load_emopia
from pdmer.data.vgmidi import fingerprint, label_bins, load_vgmidi
from pdmer.errors import InputError
from pdmer.evaluate.real import gain_summary, level_scores, listeners
from pdmer.metrics import auc, bootstrap_interval
from tests.conftest import shared_path

needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is not installed "
                                      "(Debian: apt-get install fluidsynth timgm6mb-soundfont; ./test.sh does it)")


def write_midi(path, *, seconds: float, bpm: int = 120, pitch: int = 60):
    """A one-track piano MIDI of quarter notes lasting ``seconds`` at ``bpm``."""
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    for _ in range(int(round(seconds * bpm / 60))):
        track.append(mido.Message("note_on", note=pitch, velocity=90, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=480))
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return path


def listener(age="21-25", answer="it rises", **curves):
    return {"age": age, "gender": "Female", "country": "US", "musicianship": 1, "isKnown": False,
            "ex1_valence": "1", "ex1_arousal": "2", "ex1_description": answer, "ex2_valence": "1", "ex2_arousal": "x",
            **curves}


def vgmidi_folder(root):
    """Two 8 s pieces of 4 measures (120 bpm), and one whose MIDI is far longer than its annotated duration."""
    write_midi(root / "midi" / "a.mid", seconds=8)
    write_midi(root / "midi" / "b.mid", seconds=8, pitch=67)
    write_midi(root / "midi" / "long.mid", seconds=12)
    pieces = {"piece0": {"name": "A", "midi": "a.mid", "duration": 8, "measures": 4},
              "piece1": {"name": "B", "midi": "b.mid", "duration": 8.0, "measures": 4},
              "piece2": {"name": "Long", "midi": "long.mid", "duration": 8, "measures": 4}}
    annotations = {
        # listener 1: both pieces; on piece0 an extra value and untouched trailing bins
        "piece0_0": listener(valence=[0.1, 0.2, 0.0, 0.0, 0.5], arousal=[-0.1, -0.2, 0.0, 0.0, 0.5]),
        "piece1_0": listener(valence=[0.3, 0.3, 0.3, 0.3], arousal=[0.4, 0.4, 0.4, 0.4]),
        # listener 2: both pieces
        "piece0_1": listener(age="15-20", valence=[0.5, 0.5, 0.5, 0.5], arousal=[0.6, 0.6, 0.6, 0.6]),
        "piece1_1": listener(age="15-20", valence=[-0.5, -0.5, -0.5, -0.5], arousal=[0.2, 0.2, 0.2, 0.2]),
        # two people who answered alike: three annotations under one fingerprint
        "piece0_2": listener(answer="same", valence=[0.9, 0.9, 0.9, 0.9], arousal=[0.9, 0.9, 0.9, 0.9]),
        "piece1_2": listener(answer="same", valence=[0.9, 0.9, 0.9, 0.9], arousal=[0.9, 0.9, 0.9, 0.9]),
        "piece1_3": listener(answer="same", valence=[0.9, 0.9, 0.9, 0.9], arousal=[0.9, 0.9, 0.9, 0.9]),
        # out of range, and NaN: skipped with a warning naming them
        "piece0_4": listener(age="60+", valence=[1.5, 0.1, 0.1, 0.1], arousal=[0.1, 0.1, 0.1, 0.1]),
        "piece1_4": listener(age="30-35", valence=[float("nan"), 0.1, 0.1, 0.1], arousal=[0.1, 0.1, 0.1, 0.1]),
        "piece2_0": listener(valence=[0.1] * 4, arousal=[0.1] * 4),
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "vgmidi_raw_1.json").write_text(json.dumps({"pieces": pieces,
                                                                          "annotations": annotations}))
    (root / "split.json").write_text(json.dumps({"train": ["raw1:piece0", "raw1:piece1"], "val": ["raw1:piece2"]}))
    return root


def test_label_bins_follow_the_annotation_tools_time_bins():
    # 8 s, 4 values of 2 s each: the labels of slices 0-3 take value 0, 4-7 value 1, ...
    assert label_bins(8.0, 4).tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    # 5 s, 3 values (bins of 1.667 s): the slice starting at t takes floor(t * 3 / 5); 10 whole slices
    assert label_bins(5.0, 3).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_fingerprint_groups_one_listener_and_separates_files():
    a, b = listener(valence=[0.1], arousal=[0.1]), listener(valence=[0.5], arousal=[-0.5])
    assert fingerprint("raw1", a) == fingerprint("raw1", b)  # the curves are not part of who they are
    assert fingerprint("raw1", a) != fingerprint("raw2", a)
    assert fingerprint("raw1", a) != fingerprint("raw1", listener(answer="other", valence=[0.1], arousal=[0.1]))


def test_vgmidi_loader_aligns_fingerprints_and_reports(tmp_path):
    root = vgmidi_folder(tmp_path / "vgmidi")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_vgmidi(root)
    said = " | ".join(str(w.message) for w in caught if w.category is DataWarning)
    assert "vgmidi_raw_1.json: piece0_4: values are NaN or outside [-1, 1]; skipped" in said
    assert "vgmidi_raw_1.json: piece1_4" in said
    assert "raw1:piece2 (Long: MIDI 12.0 s, annotated 8 s)" in said
    assert sorted(dataset.songs) == ["raw1:piece0", "raw1:piece1"] and dataset.found == {"pieces": 3,
                                                                                          "annotations": 10}
    assert any("1 annotation(s) carry a value more" in p for p in dataset.problems)
    assert any("1 fingerprint(s) cover more than 2" in p for p in dataset.problems)
    tasks = dataset.by_listener(min_songs=2)
    assert len(tasks) == 2  # the colliding fingerprint is no listener
    first = next(c for c in tasks[fingerprint("raw1", listener())] if c.song == "raw1:piece0")
    # values 0.1, 0.2 then untouched bins: labels of bins 0-1 only (2 s each -> 8 labels), extra value dropped
    np.testing.assert_allclose(first.va[:, 0], [0.1] * 4 + [0.2] * 4)
    np.testing.assert_allclose(first.va[:, 1], [-0.1] * 4 + [-0.2] * 4)
    mean = next(c for c in dataset.curves if c.song == "raw1:piece0" and c.listener == MEAN)
    # three annotations count (listener 1, 2 and the colliding one); labels 8-15 are reached by two of them
    assert len(mean.va) == 16
    np.testing.assert_allclose(mean.va[0], [(0.1 + 0.5 + 0.9) / 3, (-0.1 + 0.6 + 0.9) / 3], rtol=1e-6)
    np.testing.assert_allclose(mean.va[-1], [(0.5 + 0.9) / 2, (0.6 + 0.9) / 2], rtol=1e-6)
    assert len(dataset.split("train").by_listener(min_songs=2)) == 2
    assert dataset.songs["raw1:piece0"].audio is None and dataset.songs["raw1:piece0"].seconds == 8.0


def test_vgmidi_keeps_length_mismatched_pieces_when_asked(tmp_path):
    dataset = load_vgmidi(vgmidi_folder(tmp_path / "vgmidi"), drop_length_mismatch=False)
    assert "raw1:piece2" in dataset.songs


def quadrant_folder(root, rows, *, audio=True):
    (root / "audio").mkdir(parents=True)
    (root / "annotations.csv").write_text("Song,Quadrant\n" + "".join(f"{s},{q}\n" for s, q in rows))
    for index, (song, _) in enumerate(rows):
        if audio:
            tone = 0.1 * np.sin(2 * np.pi * (220 + 50 * index) * np.arange(44100 * 3) / 44100)
            soundfile.write(str(root / "audio" / f"{song}.wav"), tone.astype(np.float32), 44100)
    return root


def test_4q_loader_reads_quadrants_metadata_and_splits(tmp_path):
    root = quadrant_folder(tmp_path / "4q", [("MT1", "Q1"), ("MT2", "Q2"), ("MT3", "Q3"), ("MT4", "q4"),
                                             ("MT5", "Q5")])
    (root / "metadata.csv").write_text("Song,Artist,Title\nMT1,Someone,A song\n")
    (root / "split.json").write_text(json.dumps({"train": ["MT1", "MT2"], "val": ["MT3", "MT4"]}))
    assert detect_format(root) == "4q"
    with pytest.warns(DataWarning, match=r"annotations.csv:6: quadrant 'Q5' is not Q1-Q4; skipped"):
        dataset = load_4q(root)
    assert dataset.quadrants == {"MT1": "Q1", "MT2": "Q2", "MT3": "Q3", "MT4": "Q4"}
    assert dataset.songs["MT1"].info["Artist"] == "Someone"
    assert sorted(dataset.split("val").quadrants) == ["MT3", "MT4"]


def test_emopia_loader_splits_by_song(tmp_path):
    for name in ("Q1__vZOEQ_x_0.mid", "Q1__vZOEQ_x_1.mid", "Q3_abc_0.mid", "Q7_bad_0.mid", "notes.mid"):
        write_midi(tmp_path / "emopia" / "midi" / name, seconds=2)
    (tmp_path / "emopia" / "split.json").write_text(json.dumps({"val_songs": ["_vZOEQ_x"]}))
    assert detect_format(tmp_path / "emopia") == "emopia"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_emopia(tmp_path / "emopia")
    said = " | ".join(str(w.message) for w in caught)
    assert "Q7_bad_0.mid: quadrant 'Q7' is not Q1-Q4" in said and "notes.mid: not named Q<k>" in said
    assert dataset.quadrants == {"Q1__vZOEQ_x_0": "Q1", "Q1__vZOEQ_x_1": "Q1", "Q3_abc_0": "Q3"}
    assert dataset.split("val").quadrants.keys() == {"Q1__vZOEQ_x_0", "Q1__vZOEQ_x_1"}
    assert dataset.split("train").quadrants.keys() == {"Q3_abc_0"}


@needs_fluidsynth
def test_render_trims_caches_and_refuses_what_is_not_midi(tmp_path):
    from pdmer.data.render import MidiRenderer

    renderer = MidiRenderer(root=tmp_path / "cache")
    midi = write_midi(tmp_path / "a.mid", seconds=4)
    path = renderer.render(midi, 3.0)
    info = soundfile.info(str(path))
    assert info.samplerate == 44100 and info.channels == 1 and abs(info.duration - 3.0) < 1e-3
    samples, _ = soundfile.read(str(path))
    assert np.abs(samples).max() > 0.01  # it plays
    assert renderer.render(midi, 3.0) == path and renderer.rendered == 1  # the second time from the cache
    full = renderer.render(midi)  # trimmed to the MIDI's own 4 s, not fluidsynth's release tail
    assert abs(soundfile.info(str(full)).duration - 4.0) < 0.01
    not_midi = tmp_path / "b.mid"
    not_midi.write_text("this is not a MIDI file")
    with pytest.raises(InputError, match=r"b.mid"):
        renderer.render(not_midi, 3.0)
    left = [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len(left) == 2 and all(name.endswith(".wav") and not name.startswith(".") for name in left)


@needs_fluidsynth
def test_pdmer_data_renders_and_summarises_a_vgmidi_folder(tmp_path):
    root = vgmidi_folder(tmp_path / "vgmidi")
    result = CliRunner().invoke(main, ["data", str(root), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["name"] == "VGMIDI" and summary["found_pieces"] == 3 and summary["songs"] == 2
    assert summary["splits"]["train"] == {"songs": 2, "listeners_with_2_songs": 2}
    assert summary["seconds"] == {"min": 8.0, "median": 8.0, "max": 8.0}
    assert any("dropped" in p for p in summary["problems"])


def test_auc_known_answers():
    assert auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert auc([0.5] * 4, [False, True, False, True]) == 0.5  # a constant tells nothing
    # positives 0.4, 0.8 vs negatives 0.1, 0.4, 0.6: 0.4 wins 1, ties 1 (half), loses 1; 0.8 wins 3: 4.5 of 6
    assert auc([0.4, 0.8, 0.1, 0.4, 0.6], [True, True, False, False, False]) == pytest.approx(4.5 / 6)
    with pytest.raises(InputError, match="both classes"):
        auc([0.1, 0.2], [True, True])


def test_bootstrap_interval_known_answers():
    low, high = bootstrap_interval(np.full(20, 0.3))
    assert low == pytest.approx(0.3) and high == pytest.approx(0.3)
    values = np.random.default_rng(0).normal(1.0, 1.0, 400)
    low, high = bootstrap_interval(values)
    assert low < values.mean() < high and high - low == pytest.approx(2 * 1.96 / 20, rel=0.15)


def test_level_scores_on_a_known_case():
    rows = [{"quadrant": q, "valence": v, "arousal": a, "predicted_quadrant": p} for q, v, a, p in (
        ("Q1", 0.5, 0.5, "Q1"), ("Q2", -0.5, 0.4, "Q2"), ("Q3", 0.1, -0.6, "Q4"), ("Q4", 0.4, -0.1, "Q4"))]
    scores = level_scores(rows)
    assert scores["arousal_auc"] == 1.0 and scores["quadrant_accuracy"] == 0.75
    assert scores["valence_auc"] == 1.0  # +V means 0.5, 0.4 are above the -V means -0.5, 0.1 (Q3's sign is wrong)


class Offsets:
    """A predictor that predicts a ramp, and after personalize a ramp that matches the listener's support mean."""

    name = "offsets"

    def __init__(self, shift=0.0):
        self.shift = shift

    def predict(self, curve):
        ramp = np.linspace(-0.5, 0.5, len(curve.va))
        return np.stack([ramp, ramp], axis=1) + self.shift

    def personalize(self, support):
        return Offsets(float(support[0].va.mean()))


def test_listener_evaluation_scores_the_other_song(tmp_path):
    dataset = load_vgmidi(vgmidi_folder(tmp_path / "vgmidi"))
    result = listeners(dataset, Offsets())
    assert result["listeners"] == 2
    for row in result["per_listener"]:
        assert row["support"] != row["query"]
    summary = gain_summary(result["per_listener"])
    assert summary["valence"]["gain"] == pytest.approx(result["valence"]["gain"])


def test_pdmer_data_on_the_shared_datasets():
    runner = CliRunner()
    vgmidi = json.loads(runner.invoke(main, ["data", str(shared_path("data", "vgmidi")), "--json"]).stdout)
    assert vgmidi["found_pieces"] == 160 and vgmidi["songs"] == 155  # 5 MIDI/duration mismatches dropped
    assert vgmidi["splits"]["val"]["listeners_with_2_songs"] == 376
    fourq = json.loads(runner.invoke(main, ["data", str(shared_path("data", "4q")), "--json"]).stdout)
    assert fourq["songs"] == 720 and fourq["quadrants"] == {f"Q{k}": 180 for k in range(1, 5)}
    assert fourq["splits"]["val"]["quadrants"] == {f"Q{k}": 30 for k in range(1, 5)}
    emopia = json.loads(runner.invoke(main, ["data", str(shared_path("data", "emopia")), "--json"]).stdout)
    assert emopia["songs"] == 1078 and emopia["source_songs"] == 387


@needs_fluidsynth
@pytest.mark.slow
def test_eval_real_on_vgmidi_and_4q_folders_with_a_clip_that_does_not_decode(tmp_path):
    """The embedded default model and the training mean through curves, listeners and levels, end to end."""
    vgmidi = vgmidi_folder(tmp_path / "vgmidi")
    fourq = quadrant_folder(tmp_path / "4q", [("MT1", "Q1"), ("MT2", "Q2"), ("MT3", "Q3"), ("MT4", "Q4"),
                                              ("MT5", "Q1")])
    (fourq / "audio" / "MT5.wav").write_text("not audio at all")
    (fourq / "split.json").write_text(json.dumps({"train": ["MT1", "MT2", "MT3", "MT4", "MT5"]}))
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["eval", "--task", "real", "--data", str(vgmidi), "--data", str(fourq),
                                       "--split", "train", "--cache", str(tmp_path / "cache"),
                                       "--json", str(out) + ".json", "--markdown", str(out) + ".md"])
    assert result.exit_code == 0, result.output
    assert "skipping MT5" in result.output and "MT5.wav" in result.output
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {(r["model"], r["data"].split(":")[0]): r["evaluations"] for r in report["results"]}
    model, mean = rows[("default/model", "VGMIDI")], rows[("training mean", "VGMIDI")]
    assert model["curves"]["songs"] == 2 and model["listeners"]["listeners"] == 2
    assert mean["listeners"]["valence"]["gain"] == 0.0  # a constant is not personalised
    levels = rows[("default/model", "4Q")]["levels"]
    assert levels["songs"] == 4 and levels["skipped"] == ["MT5"]
    assert rows[("training mean", "4Q")]["levels"]["arousal_auc"] == 0.5  # a constant cannot rank
    text = (tmp_path / "report.md").read_text()
    assert "## Curves" in text and "## Levels" in text and "## Listeners" in text


@needs_fluidsynth
def test_a_midi_that_does_not_render_is_skipped_by_name(tmp_path):
    from pdmer.data.curves import CurveSet, Song
    from pdmer.data.render import MidiRenderer, with_rendered_audio

    good = write_midi(tmp_path / "good.mid", seconds=2)
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    songs = {"good": Song("good", None, midi=good), "bad": Song("bad", None, midi=bad)}
    dataset = CurveSet("set", songs, [], quadrants={"good": "Q1", "bad": "Q2"})
    with pytest.warns(DataWarning, match=r"skipping song bad: .*bad.mid"):
        rendered = with_rendered_audio(dataset, MidiRenderer(root=tmp_path / "cache"))
    assert list(rendered.songs) == ["good"] and rendered.quadrants == {"good": "Q1"}
    assert rendered.songs["good"].audio.is_file()


def test_eval_real_refuses_a_split_the_dataset_lacks(tmp_path):
    from pdmer.evaluate.real import evaluation_split

    dataset = load_vgmidi(vgmidi_folder(tmp_path / "vgmidi"))
    with pytest.raises(InputError, match="has no split 'test' \\(it has train, val\\)"):
        evaluation_split(dataset, "test", None)
    assert set(evaluation_split(dataset, "all", None).songs) == set(dataset.songs)


def test_a_training_source_renders_its_midi_with_its_own_soundfont(tmp_path):
    """sources = [{data = VGMIDI, soundfont = ...}]: the same pieces on other timbres; a soundfont that is not there
    is named before any rendering."""
    from pdmer.train.config import Source, TrainConfig
    from pdmer.train.run import Run

    root = vgmidi_folder(tmp_path / "vgmidi")
    missing = tmp_path / "missing.sf2"
    config = TrainConfig(mode="dmer", sources=[{"data": str(root), "soundfont": str(missing)}, {"data": str(root)}],
                         cache=str(tmp_path / "cache"), steps=1, window=12, batch_size=2, device="cpu")
    assert [source.soundfont for source in config.data_sources()] == [str(missing), ""]
    with pytest.raises(InputError, match=f"soundfont {missing} does not exist"):
        Run(config, tmp_path / "run", resume=False, report=lambda _: None)
    with pytest.raises(InputError, match="soundfont must be a string"):
        Source.parse({"data": str(root), "soundfont": 3})


def test_transposed_midi_moves_pitched_notes_and_leaves_the_drums(tmp_path):
    import mido

    from pdmer.data.render import transposed
    from pdmer.train.config import Source

    midi = write_midi(tmp_path / "a.mid", seconds=2, pitch=126)
    song = mido.MidiFile(str(midi))
    song.tracks[0].append(mido.Message("note_on", channel=9, note=38, velocity=90, time=0))  # a snare
    song.save(str(midi))
    moved = mido.MidiFile(str(transposed(midi, 2, tmp_path / "up.mid")))
    notes = [(m.channel, m.note) for m in moved.tracks[0] if m.type == "note_on"]
    assert notes[:-1] == [(0, 127)] * (len(notes) - 1) and notes[-1] == (9, 38)  # 128 kept within range
    down = mido.MidiFile(str(transposed(midi, -2, tmp_path / "down.mid")))
    assert {m.note for m in down.tracks[0] if m.type == "note_on" and m.channel == 0} == {124}
    with pytest.raises(InputError, match="transpose is whole semitones in -12..12, got 13"):
        Source.parse({"data": "x", "transpose": 13})


@needs_fluidsynth
def test_a_transposed_rendering_is_cached_apart_and_sounds_higher(tmp_path):
    from pdmer.data.render import MidiRenderer

    midi = write_midi(tmp_path / "a.mid", seconds=2, pitch=57)
    plain = MidiRenderer(root=tmp_path / "cache")
    assert MidiRenderer(root=tmp_path / "cache", transpose=0).key == plain.key  # old renderings stay valid
    up = MidiRenderer(root=tmp_path / "cache", transpose=12)
    low, high = (soundfile.read(str(r.render(midi, 2.0)))[0] for r in (plain, up))

    def strongest(samples):  # Hz
        return float(np.fft.rfftfreq(len(samples), 1 / 44100)[np.abs(np.fft.rfft(samples)).argmax()])

    assert up.path(midi, 2.0) != plain.path(midi, 2.0)
    assert 1.9 < strongest(high) / strongest(low) < 2.1, (strongest(low), strongest(high))  # an octave up
