"""``pdmer predict --plot`` on a real track: two listeners' profiles and a ground-truth curve on one readable figure
(axes with units, a legend, a title that names the song and the profiles), and its bad input refused."""

from __future__ import annotations

import numpy as np
import pytest

from pdmer.defaults import MUSIC_EXCERPT

from test_profiles import pdmer, write_curve


@pytest.fixture(scope="module")
def listeners(tmp_path_factory):
    """A PDMER_HOME with profiles calm and bright of the embedded default model, each from its own curve for the
    bundled excerpt (real music), and a ground-truth curve on [0, 1]."""
    root = tmp_path_factory.mktemp("plot")
    home = root / "home"
    times = np.arange(0, 30, 0.5)
    for name, valence, arousal in (("calm", 0.1 + 0 * times, -0.5 + 0 * times), ("bright", 0.6 + 0 * times,
                                                                                0.4 + 0 * times)):
        write_curve(root / f"{name}.csv", times, valence, arousal)
        made = pdmer("profile", "create", name, "--audio", MUSIC_EXCERPT, "--curve", root / f"{name}.csv", home=home)
        assert made.returncode == 0, made.stderr
    truth = root / "truth.csv"
    write_curve(truth, np.arange(0, 30, 0.25), 0.5 + 0.3 * np.sin(np.arange(0, 30, 0.25) / 4), 0.4 + 0 * np.arange(
        0, 30, 0.25))
    return {"root": root, "home": home, "truth": truth}


def test_two_profiles_and_the_truth_on_one_readable_figure(listeners, monkeypatch):
    png = listeners["root"] / "palace.png"
    result = pdmer("predict", MUSIC_EXCERPT, "--profile", "calm", "--profile", "bright", "--truth", listeners["truth"],
                   "--truth-scale", "[0,1]", "--plot", png, home=listeners["home"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # several profiles: the plot is the output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 30_000

    # The figure the command drew, rebuilt from the same predictions, read back: what a reader sees.
    from pdmer.audio import load_audio
    from pdmer.export.predict import load_deployed, predict_each
    from pdmer.plot import curves_figure
    from pdmer.profiles.curve import read_curve

    monkeypatch.setenv("PDMER_HOME", str(listeners["home"]))
    deployments = [load_deployed(None, profile=name) for name in ("calm", "bright")]
    predictions, waveform, rate = predict_each(deployments, MUSIC_EXCERPT)
    assert np.abs(predictions[0].va - predictions[1].va).mean() > 0.05  # two listeners, two curves
    times, values = read_curve(listeners["truth"], scale="[0,1]")
    figure = curves_figure({"calm": predictions[0], "bright": predictions[1]}, waveform, rate,
                           song=MUSIC_EXCERPT.name, model=predictions[0].model,
                           truth=(times, values, "ground truth (truth.csv)"))
    valence, arousal, level = figure.axes
    assert [axes.get_ylabel() for axes in figure.axes] == ["valence (-1 .. 1)", "arousal (-1 .. 1)", "level (dBFS)"]
    assert level.get_xlabel() == "time (s)"
    assert [text.get_text() for text in valence.get_legend().get_texts()] == [
        "profile calm", "profile bright", "ground truth (truth.csv)"]
    title = figure.get_suptitle()
    assert MUSIC_EXCERPT.name in title and "calm" in title and "bright" in title
    truth_line = valence.get_lines()[2]
    assert np.allclose(truth_line.get_ydata(), values[:, 0])  # the truth, mapped from [0, 1] onto [-1, 1]
    wave, _ = load_audio(MUSIC_EXCERPT)
    assert len(waveform) == len(wave)


def test_plot_options_refuse_what_they_cannot_draw(listeners):
    png = listeners["root"] / "refused.png"
    several = pdmer("predict", MUSIC_EXCERPT, "--profile", "calm", "--profile", "bright", "--csv",
                    listeners["root"] / "x.csv", "--plot", png, home=listeners["home"])
    assert several.returncode == 2 and "give one --profile" in several.stderr
    no_plot = pdmer("predict", MUSIC_EXCERPT, "--truth", listeners["truth"], home=listeners["home"])
    assert no_plot.returncode == 2 and "add --plot" in no_plot.stderr
    broken = listeners["root"] / "broken.csv"
    broken.write_text("time_s,valence,arousal\n0,0.1,0.2\n0.5,nan,0.2\n")
    bad_truth = pdmer("predict", MUSIC_EXCERPT, "--truth", broken, "--plot", png, home=listeners["home"])
    assert bad_truth.returncode == 2 and "broken.csv" in bad_truth.stderr
    assert not png.exists()
