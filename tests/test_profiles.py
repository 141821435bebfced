"""Profiles: create / list / show / delete / export / import, the base-model check, atomic writes under kills and
concurrent creates, and every kind of bad input refused with nothing written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
import torch

from pdmer.model.checkpoint import load_model, save_model, weights_hash
from pdmer.model.registry import build_model

from conftest import MUSICNN_INPUTS

RATE = 22050
SECONDS = 12.0
ADAPTATION = json.dumps({"steps": 3, "lr": 0.05, "train_mode": True, "window": 60, "params": "head"})


def pdmer(*args, home, timeout=300):
    env = {**os.environ, "PDMER_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "pdmer", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A base checkpoint, a 12 s song, and a listener's curve for it (every 0.25 s, on [0, 1])."""
    root = tmp_path_factory.mktemp("profiles")
    torch.manual_seed(0)
    model = build_model("dsaml", "small", global_dim=200)
    base = save_model(model, root / "base.safetensors",
                      metadata={**MUSICNN_INPUTS, "adaptation": ADAPTATION})
    other = save_model(build_model("dsaml", "small", global_dim=200), root / "other.safetensors")
    t = np.arange(int(SECONDS * RATE)) / RATE
    song = root / "song.wav"
    soundfile.write(str(song), (0.3 * np.sin(2 * np.pi * (220 + 20 * t) * t) * (0.5 + 0.5 * np.sin(t))).astype(
        np.float32), RATE)
    times = np.arange(0, SECONDS, 0.25)
    curve = root / "curve.csv"
    write_curve(curve, times, 0.5 + 0.3 * np.sin(times / 2), 0.5 + 0.2 * np.cos(times / 3))
    return {"root": root, "base": base, "other": other, "song": song, "curve": curve}


def write_curve(path, times, valence, arousal):
    rows = ["time_s,valence,arousal"] + [f"{t},{v},{a}" for t, v, a in zip(times, valence, arousal)]
    path.write_text("\n".join(rows) + "\n")


def create(files, home, name="alice", *extra, curve=None, audio=None):
    return pdmer("profile", "create", name, "--audio", audio or files["song"], "--curve", curve or files["curve"],
                 "--base", files["base"], "--scale", "[0,1]", *extra, home=home)


def stored(home) -> list[str]:
    root = home / "profiles"
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def test_create_list_show_predict_export_import_delete(files, tmp_path):
    from pdmer.profiles import load

    home = tmp_path / "home"
    result = create(files, home)
    assert result.returncode == 0, result.stderr
    assert "valence_rmse" in result.stdout
    os.environ["PDMER_HOME"] = str(home)
    try:
        profile = load("alice")
    finally:
        del os.environ["PDMER_HOME"]
    info = profile.info
    assert info["base"]["weights_sha256"] == weights_hash(load_model(files["base"]))
    assert info["adaptation"]["steps"] == 3 and info["support"]["steps"] == 24  # 12 s at 2 Hz
    assert info["fit"]["after"]["valence_rmse"] < info["fit"]["before"]["valence_rmse"]
    assert weights_hash(load_model(profile.weights)) == info["weights_sha256"] != info["base"]["weights_sha256"]
    listing = pdmer("profile", "list", home=home)
    assert "default" in listing.stdout and "alice" in listing.stdout
    shown = pdmer("profile", "show", "alice", home=home)
    assert shown.returncode == 0 and "base model" in shown.stdout and "->" in shown.stdout

    with_profile = pdmer("predict", files["song"], "--model", files["base"], "--profile", "alice", "--json", home=home)
    without = pdmer("predict", files["song"], "--model", files["base"], "--json", home=home)
    assert with_profile.returncode == 0 and without.returncode == 0, with_profile.stderr + without.stderr
    adapted, base = (np.array(json.loads(r.stdout)["rows"]) for r in (with_profile, without))
    assert adapted.shape == base.shape and np.abs(adapted - base).max() > 1e-3  # the profile changes the curve
    wrong_base = pdmer("predict", files["song"], "--model", files["other"], "--profile", "alice", home=home)
    assert wrong_base.returncode == 2 and "was made for base model" in wrong_base.stderr
    assert "pdmer profile create alice" in wrong_base.stderr

    exported = tmp_path / "moved"
    assert pdmer("profile", "export", "alice", "-o", exported, home=home).returncode == 0
    other_home = tmp_path / "home2"
    imported = pdmer("profile", "import", exported, "--name", "alice2", home=other_home)
    assert imported.returncode == 0, imported.stderr
    assert stored(other_home) == ["alice2"]
    assert pdmer("profile", "delete", "alice", home=home).returncode == 0
    assert stored(home) == []
    gone = pdmer("profile", "show", "alice", home=home)
    assert gone.returncode == 2 and "known profiles: default" in gone.stderr


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "default", "x" * 65, "a..b"])
def test_bad_names_are_refused(files, tmp_path, name):
    result = create(files, tmp_path / "home", name)
    assert result.returncode == 2 and "profile name" in result.stderr, result.stderr
    assert not (tmp_path / "x").exists() and stored(tmp_path / "home") == []


def bad_inputs(files, tmp_path):
    times = np.arange(0, SECONDS, 0.5)
    cases = {}

    def curve(name, t=times, v=None, a=None):
        path = tmp_path / f"{name}.csv"
        write_curve(path, t, 0.5 + 0 * t if v is None else v, 0.5 + 0 * t if a is None else a)
        return path

    values = 0.5 + 0 * times
    with_nan = values.copy()
    with_nan[5] = np.nan
    cases["nan"] = ({"curve": curve("nan", v=with_nan)}, "nan.csv:7: valence is 'nan'")
    backwards = times.copy()
    backwards[[3, 4]] = backwards[[4, 3]]
    cases["not monotonic"] = ({"curve": curve("back", t=backwards)}, "times must increase")
    cases["wrong scale"] = ({"curve": curve("scale", v=values * 9)}, "outside the declared scale [0,1]")
    short = np.arange(0, 3, 0.5)
    cases["much shorter"] = ({"curve": curve("short", t=short)}, "covers 3.0 s of the 12.0 s song")
    long = np.arange(0, 60, 0.5)
    cases["much longer"] = ({"curve": curve("long", t=long)}, "the audio is 12.0 s long")
    (tmp_path / "noheader.csv").write_text("1,2,3\n4,5,6\n")
    cases["no header"] = ({"curve": tmp_path / "noheader.csv"}, "must start with the header time_s,valence,arousal")
    (tmp_path / "german.csv").write_bytes("\ufeffZeit;Valenz;Erregung\r\n0;0,5;0,5\r\n0,5;0,5;0,5\r\n".encode())
    cases["unknown columns"] = ({"curve": tmp_path / "german.csv"}, "Found: line 1 'Zeit;Valenz;Erregung', delimiter "
                                "';' detected, columns ['Zeit', 'Valenz', 'Erregung']")
    (tmp_path / "commas.csv").write_text("time_s,valence,arousal\n0,0,5,0,5\n0.5,0.5,0.5\n")
    cases["decimal commas between commas"] = ({"curve": tmp_path / "commas.csv"},
                                              "commas.csv:2: 5 cells where the header has 3 (delimiter ',')")
    (tmp_path / "empty.wav").write_bytes(b"")
    cases["empty audio"] = ({"audio": tmp_path / "empty.wav"}, "cannot decode")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(files["song"].read_bytes()[:44] + os.urandom(2000))
    cases["corrupt audio"] = ({"audio": corrupt}, "")
    return cases


def test_bad_input_is_refused_with_nothing_written(files, tmp_path):
    home = tmp_path / "home"
    for case, (paths, message) in bad_inputs(files, tmp_path).items():
        result = create(files, home, "bob", **paths)
        assert result.returncode == 2, (case, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (case, result.stderr)
        assert stored(home) == [], case
        staging = list((home / "profiles" / ".store").glob("*")) if (home / "profiles" / ".store").exists() else []
        assert staging == [], case


KILL_AT = """
import os, signal, sys
from pdmer.profiles import store
point = sys.argv[1]
real_rename, real_replace = os.rename, os.replace
def die():
    os.kill(os.getpid(), signal.SIGKILL)
if point == "staged":
    real_publish = store.publish
    store.publish = lambda *a, **k: die()
elif point == "renamed":
    from pathlib import Path
    real = Path.rename
    def rename(self, target):
        result = real(self, target)
        die()
    Path.rename = rename
elif point == "linked":
    def replace(source, target):
        if str(target).endswith("/bob"):
            die()
        return real_replace(source, target)
    os.replace = replace
from pdmer.profiles import create
create("bob", sys.argv[2], sys.argv[3], base=sys.argv[4], scale="[0,1]", force=True)
"""


@pytest.fixture(scope="module")
def home_with_bob(files, tmp_path_factory):
    home = tmp_path_factory.mktemp("bob") / "home"
    assert create(files, home, "bob").returncode == 0
    return home


@pytest.mark.parametrize("point", ["staged", "renamed", "linked"])
def test_a_killed_create_leaves_the_old_profile_intact(files, home_with_bob, tmp_path, point):
    """SIGKILL at each step of publishing a replacement: the old profile stays whole and loadable."""
    import shutil

    from pdmer.profiles import load

    home = tmp_path / "home"
    shutil.copytree(home_with_bob, home, symlinks=True)
    os.environ["PDMER_HOME"] = str(home)
    try:
        old = load("bob").info["created"], load("bob").info["weights_sha256"]
        killed = subprocess.run([sys.executable, "-c", KILL_AT, point, files["song"], files["curve"], files["base"]],
                                env={**os.environ}, capture_output=True, text=True, timeout=300)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        profile = load("bob")
        assert (profile.info["created"], profile.info["weights_sha256"]) == old
        assert weights_hash(load_model(profile.weights)) == old[1]
        from pdmer.export.runtime import OnnxModel

        assert OnnxModel(profile.onnx, device="cpu").metadata["weights_sha256"] == old[1]
    finally:
        del os.environ["PDMER_HOME"]


def test_a_killed_first_create_leaves_no_profile(files, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "PDMER_HOME": str(home)}
    killed = subprocess.run([sys.executable, "-c", KILL_AT, "renamed", files["song"], files["curve"], files["base"]],
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert stored(home) == []
    listing = pdmer("profile", "list", home=home)
    assert listing.returncode == 0 and "bob" not in listing.stdout


def test_two_concurrent_creates_of_one_name(files, tmp_path):
    from pdmer.profiles import load

    home = tmp_path / "home"
    env = {**os.environ, "PDMER_HOME": str(home)}
    command = [sys.executable, "-m", "pdmer", "profile", "create", "carol", "--audio", str(files["song"]), "--curve",
               str(files["curve"]), "--base", str(files["base"]), "--scale", "[0,1]", "--force"]
    started = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    results = [p.communicate(timeout=300) for p in started]
    assert [p.returncode for p in started] == [0, 0], results
    os.environ["PDMER_HOME"] = str(home)
    try:
        profile = load("carol")
        assert weights_hash(load_model(profile.weights)) == profile.info["weights_sha256"]
    finally:
        del os.environ["PDMER_HOME"]
    assert len(list((home / "profiles" / ".store").iterdir())) == 1  # one published folder, nothing left over


HOLD = """
import os, sys, time
from pathlib import Path
from pdmer.profiles import store
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
real_publish = store.publish
def held(*args, **kwargs):  # the profile is staged: say so, and wait to be let go (or killed)
    ready.write_text(str(os.getpid()))
    while not go.exists():
        time.sleep(0.05)
    return real_publish(*args, **kwargs)
store.publish = held
from pdmer.cli import main
main(sys.argv[3:], prog_name="pdmer")
"""


def held_create(files, home, name, tmp_path):
    """A real ``pdmer profile create`` that stops once its profile is staged; returns it, its staging folder and
    the file that lets it go on."""
    ready, go = tmp_path / f"{name}.ready", tmp_path / f"{name}.go"
    args = ["profile", "create", name, "--audio", files["song"], "--curve", files["curve"], "--base", files["base"],
            "--scale", "[0,1]"]
    process = subprocess.Popen([sys.executable, "-c", HOLD, ready, go, *map(str, args)], text=True,
                               env={**os.environ, "PDMER_HOME": str(home)}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"create {name} never got to publishing: {process.communicate()}")
        time.sleep(0.1)
    [folder] = (home / "profiles" / ".store").glob(f".staging-{name}-*")
    return process, folder, go


def leaks_store_path(text, home):
    return ".store" in text or ".locks" in text or str(home) in text


def test_the_next_create_removes_a_killed_creates_staging_but_not_a_running_ones(files, tmp_path):
    home = tmp_path / "home"
    killed, stale, _ = held_create(files, home, "dave", tmp_path)
    assert (stale / "model.onnx").is_file()
    killed.kill()  # SIGKILL while staging
    assert killed.wait(timeout=60) == -signal.SIGKILL and stale.is_dir()
    running, live, go = held_create(files, home, "erin", tmp_path)
    try:
        result = create(files, home, "frank")
        assert result.returncode == 0, result.stderr
        assert "profile 'frank' created" in result.stdout and not leaks_store_path(result.stdout + result.stderr, home)
        assert not stale.exists() and (live / "model.onnx").is_file()
        go.touch()
        out, err = running.communicate(timeout=300)
    finally:
        running.kill()  # no-op once it has exited
    assert running.returncode == 0, err
    assert stored(home) == ["erin", "frank"]
    assert sorted(p.name.split("-")[0] for p in (home / "profiles" / ".store").iterdir()) == ["erin", "frank"]
    assert sorted(p.name for p in (home / "profiles" / ".locks").iterdir()) == ["erin.lock", "frank.lock"]


def tree(home):
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")) if home.exists() else None


@pytest.mark.parametrize("command", [["show", "nosuch"], ["show", "nosuch", "--json"], ["delete", "nosuch"],
                                     ["export", "nosuch", "-o", "OUT"]])
def test_a_missing_name_writes_nothing(files, home_with_bob, tmp_path, command):
    import shutil

    out = tmp_path / "out"
    command = [str(out) if arg == "OUT" else arg for arg in command]
    empty = pdmer("profile", *command, home=tmp_path / "empty")
    assert empty.returncode == 2 and "no profile named 'nosuch'; known profiles: default" in empty.stderr
    assert not (tmp_path / "empty").exists() and not out.exists()
    home = tmp_path / "home"
    shutil.copytree(home_with_bob, home, symlinks=True)
    before = tree(home)
    result = pdmer("profile", *command, home=home)
    assert result.returncode == 2 and "no profile named 'nosuch'; known profiles: default, bob" in result.stderr
    assert tree(home) == before and not out.exists() and not leaks_store_path(result.stderr, home)


def test_delete_removes_the_lock_file_and_old_leftovers(home_with_bob, tmp_path):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(home_with_bob, home, symlinks=True)
    (home / "profiles" / ".locks" / "nosuch.lock").touch()  # what older versions left for a missing name
    result = pdmer("profile", "delete", "bob", home=home)
    assert result.returncode == 0 and result.stdout == "profile 'bob' deleted\n" and result.stderr == ""
    assert tree(home) == ["profiles", "profiles/.locks", "profiles/.store"]


def test_show_is_readable_and_json_on_request(home_with_bob):
    shown = pdmer("profile", "show", "bob", home=home_with_bob)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines[:4]] == ["name", "created", "base model", "song"]
    assert "adapted     head: all but the front end" in lines and "steps / lr  3 / 0.05" in lines
    assert "valence_rmse" in shown.stdout and not leaks_store_path(shown.stdout, home_with_bob)
    as_json = pdmer("profile", "show", "bob", "--json", home=home_with_bob)
    info = json.loads(as_json.stdout)
    assert info["name"] == "bob" and info["adaptation"]["steps"] == 3 and "after" in info["fit"]
    assert json.loads(pdmer("profile", "show", "default", "--json", home=home_with_bob).stdout)["name"] == "default"


def test_a_broken_profile_is_named_not_located(home_with_bob, tmp_path):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(home_with_bob, home, symlinks=True)
    (home / "profiles" / "bob" / "profile.json").write_text("{broken")
    for command in (["show", "bob"], ["list"], ["export", "bob", "-o", tmp_path / "out"]):
        result = pdmer("profile", *command, home=home)
        assert result.returncode == 2 and "profile 'bob' is unreadable" in result.stderr, (command, result.stderr)
        assert not leaks_store_path(result.stderr, home) and "Traceback" not in result.stderr
    (home / "profiles" / "bob" / "profile.json").unlink()
    result = pdmer("profile", "show", "bob", home=home)
    assert "profile 'bob' is unreadable (No such file or directory)" in result.stderr
    assert not leaks_store_path(result.stderr, home)


def test_a_writer_waiting_on_a_removed_lock_file_locks_the_new_one(tmp_path):
    """delete removes a name's lock file while holding it; a writer that was waiting must not hold the old one."""
    import threading

    from pdmer.profiles import store

    path = tmp_path / "x.lock"
    first = store.take_lock(path, wait=True)
    taken = []
    waiter = threading.Thread(target=lambda: taken.append(store.take_lock(path, wait=True)))
    waiter.start()
    time.sleep(0.5)  # the waiter has opened the file and waits in flock
    path.unlink()
    first.close()
    waiter.join(timeout=30)
    assert os.path.samestat(os.fstat(taken[0].fileno()), os.stat(path))
    assert store.take_lock(path, wait=False) is None  # it holds the file now at the path
    taken[0].close()


def test_curve_resampling_onto_the_grid(tmp_path):
    from pdmer.profiles.curve import support_curve

    path = tmp_path / "c.csv"
    write_curve(path, np.array([0.2, 1.0, 5.0, 9.9]), np.array([0.0, 0.2, 0.6, 0.6]), np.array([0.1, 0.1, 0.1, 0.1]))
    curve = support_curve(path, 10.0)
    assert curve.first_step == 1 and len(curve.va) == 19  # steps at 0.5 .. 9.5 s
    assert curve.va[1, 0] == pytest.approx(0.2) and curve.va[-1, 0] == pytest.approx(0.6)


def spreadsheet(text: str, dialect: str) -> bytes:
    """The bytes a spreadsheet saves for a curve CSV ``text`` (commas, LF): Excel's "CSV UTF-8" (a byte-order mark),
    semicolons, semicolons and decimal commas with a BOM and CRLF (Excel on a German system), or CRLF line ends with
    spaces around the cells and blank lines."""
    lines = text.splitlines()
    if dialect == "bom":
        return ("\ufeff" + text).encode()
    if dialect == "semicolon":
        return "\n".join(line.replace(",", ";") for line in lines).encode() + b"\n"
    if dialect == "decimal comma":
        return ("\ufeff" + "\r\n".join(line.replace(",", ";").replace(".", ",") for line in lines) + "\r\n").encode()
    assert dialect == "crlf"
    return ("\r\n" + "\r\n".join(" , ".join(line.split(",")) + " " for line in lines) + "\r\n\r\n").encode()


DIALECTS = ["bom", "semicolon", "decimal comma", "crlf"]


@pytest.fixture(scope="module")
def reference(files, tmp_path_factory):
    """The info of the profile made from the plain comma-separated curve."""
    from pdmer.profiles import load

    home = tmp_path_factory.mktemp("reference")
    result = create(files, home, "plain")
    assert result.returncode == 0, result.stderr
    return load("plain", root=home / "profiles").info


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_spreadsheet_curve_makes_the_same_profile(files, reference, tmp_path, dialect):
    """`pdmer profile create --curve` on the curve as a spreadsheet saves it: the same labels as the plain CSV's
    (the same support steps and the same fit of the base model on them)."""
    from pdmer.profiles import load

    curve = tmp_path / "mine.csv"
    curve.write_bytes(spreadsheet(files["curve"].read_text(), dialect))
    home = tmp_path / "home"
    result = create(files, home, "mine", curve=curve)
    assert result.returncode == 0, result.stderr
    info = load("mine", root=home / "profiles").info
    assert info["support"] == reference["support"] and info["curve"]["points"] == reference["curve"]["points"] == 48
    assert info["fit"]["before"] == reference["fit"]["before"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_curve_reader_reads_each_dialect(files, tmp_path, dialect):
    from pdmer.profiles.curve import read_curve

    curve = tmp_path / "mine.csv"
    curve.write_bytes(spreadsheet(files["curve"].read_text(), dialect))
    times, values = read_curve(curve, scale="[0,1]")
    plain_times, plain_values = read_curve(files["curve"], scale="[0,1]")
    assert len(times) == 48
    np.testing.assert_array_equal(times, plain_times)
    np.testing.assert_array_equal(values, plain_values)


def test_predict_names_a_refused_truth_curve_and_writes_nothing(files, tmp_path):
    """`pdmer predict --truth` reads curves with the same reader: a file it still refuses is named (delimiter,
    columns, first line) before any prediction, and no plot is written."""
    truth = tmp_path / "truth.csv"
    truth.write_bytes("\ufefftime;valence;arousal\r\n0;0,5;0,5\r\n".encode())
    plot = tmp_path / "out" / "plot.png"
    result = pdmer("predict", files["song"], "--model", files["base"], "--truth", truth, "--plot", plot,
                   home=tmp_path / "home")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "missing column(s) time_s" in result.stderr
    assert "line 1 'time;valence;arousal', delimiter ';' detected, columns ['time', 'valence', 'arousal']" \
        in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truth.csv"]
