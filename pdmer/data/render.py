"""MIDI to audio, once: fluidsynth with a General MIDI soundfont, 44.1 kHz, trimmed to the annotated duration.

VGMIDI and EMOPIA are scores, not recordings; pdmer hears them as fluidsynth plays them. The rendered file is kept in
the feature cache under a key made of the MIDI's bytes, the soundfont's bytes, fluidsynth's version, the rate and the
trim, so a new soundfont or fluidsynth renders again and nothing stale is returned. Writes are atomic: an interrupted
or failed render leaves no file behind.

Setup (Debian): ``apt-get install fluidsynth fluid-soundfont-gm`` (FluidR3_GM.sf2, MIT licence), or the 6 MB
``timgm6mb-soundfont``; any .sf2 with ``--soundfont PATH`` or ``$PDMER_SOUNDFONT``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pdmer.data.cache import default_cache_dir, stable_hash
from pdmer.data.curves import CurveSet, warn
from pdmer.errors import InputError
from pdmer.fileio import atomic_path, file_sha256

SAMPLE_RATE = 44100  # the model's input rate (pdmer.model.preprocess.MelConfig)
SOUNDFONTS = (  # Debian's General MIDI soundfonts, best first
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
)
INSTALL_HINT = "install it (Debian: apt-get install fluidsynth fluid-soundfont-gm) or pass --soundfont PATH"


def find_soundfont(soundfont: str | Path | None = None) -> Path:
    """The soundfont to render with: the one given, else ``$PDMER_SOUNDFONT``, else Debian's GM soundfonts."""
    chosen = soundfont or os.environ.get("PDMER_SOUNDFONT")
    if chosen:
        if not Path(chosen).is_file():
            raise InputError(f"soundfont {chosen} does not exist; give an .sf2 file")
        return Path(chosen)
    for candidate in SOUNDFONTS:
        if candidate.is_file():
            return candidate
    raise InputError(f"no General MIDI soundfont found (looked for {', '.join(map(str, SOUNDFONTS))}): {INSTALL_HINT}")


@functools.lru_cache(maxsize=1)
def fluidsynth_version() -> str:
    if shutil.which("fluidsynth") is None:
        raise InputError(f"rendering MIDI needs the fluidsynth program, which is not on PATH: {INSTALL_HINT}")
    result = subprocess.run(["fluidsynth", "--version"], capture_output=True, text=True, timeout=30)
    first = (result.stdout or result.stderr).strip().splitlines()
    return first[0] if first else "unknown"


@contextmanager
def midi_errors(path: str | Path) -> Iterator[None]:
    """Inside the block, whatever mido raises on a file that is not MIDI becomes an InputError naming ``path``."""
    try:
        yield
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as error:
        raise InputError(f"{path} is not a readable MIDI file: {error}") from None


def midi_seconds(path: str | Path) -> float:
    """The length of a MIDI file in seconds (its tempo map applied), or an InputError naming the file."""
    import mido

    with midi_errors(path):
        return float(mido.MidiFile(str(path)).length)


def transposed(midi: Path, semitones: int, out: Path) -> Path:
    """A copy of ``midi`` with every pitched note moved by ``semitones`` (kept within 0..127); channel 10 (index
    9) is General MIDI's drum kit, where a note number names a drum, so it is left alone."""
    import mido

    with midi_errors(midi):
        song = mido.MidiFile(str(midi))
    for track in song.tracks:
        for message in track:
            if message.type in ("note_on", "note_off", "polytouch") and message.channel != 9:
                message.note = min(127, max(0, message.note + semitones))
    song.save(str(out))
    return out


class MidiRenderer:
    """``renderer.render(midi, seconds)`` -> a mono 44.1 kHz WAV in the cache, rendered on first use."""

    def __init__(self, *, soundfont: str | Path | None = None, root: str | Path | None = None,
                 sample_rate: int = SAMPLE_RATE, transpose: int = 0):
        self.soundfont = find_soundfont(soundfont)
        self.sample_rate = sample_rate
        self.root = Path(root) if root is not None else default_cache_dir()
        self.transpose = transpose  # semitones, every pitched note (not channel 10's drums); 0 = as written
        shift = {"transpose": transpose} if transpose else {}  # untransposed renderings keep their cache keys
        self.key = stable_hash({"soundfont": file_sha256(self.soundfont), "fluidsynth": fluidsynth_version(),
                                "rate": sample_rate, **shift})
        self.rendered = 0  # files rendered (not found in the cache) by this instance

    def path(self, midi: Path, seconds: float | None) -> Path:
        trim = "full" if seconds is None else f"{seconds:.3f}s"
        digest = file_sha256(midi)
        return self.root / "rendered" / digest[:2] / f"{digest}-{self.key}-{trim}.wav"

    def render(self, midi: str | Path, seconds: float | None = None) -> Path:
        """Render ``midi``; ``seconds``: trim to this duration (fluidsynth adds a release tail of ~2 s), else to
        the MIDI's own length."""
        import soundfile

        midi = Path(midi)
        if not midi.is_file():
            raise InputError(f"MIDI file {midi} does not exist")
        target = self.path(midi, seconds)
        if target.is_file():
            return target
        length = midi_seconds(midi) if seconds is None else seconds
        with tempfile.TemporaryDirectory(prefix="pdmer-render-") as scratch:
            raw = Path(scratch) / "out.wav"
            played = transposed(midi, self.transpose, Path(scratch) / "in.mid") if self.transpose else midi
            command = ["fluidsynth", "-ni", "-q", "-r", str(self.sample_rate), "-F", str(raw),
                       str(self.soundfont), str(played)]
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if result.returncode != 0 or not raw.is_file() or raw.stat().st_size <= 44:
                said = (result.stderr or result.stdout).strip().splitlines()
                raise InputError(f"fluidsynth could not render {midi}: {said[-1] if said else 'no audio written'}")
            samples, rate = soundfile.read(str(raw), dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)[: int(round(length * rate))]
        if len(samples) == 0 or not np.any(samples):
            raise InputError(f"fluidsynth rendered {midi} as silence: is it a MIDI file with notes?")
        with atomic_path(target) as temporary:
            soundfile.write(str(temporary), samples, rate, subtype="PCM_16", format="WAV")
        self.rendered += 1
        return target


def with_rendered_audio(dataset: CurveSet, renderer: MidiRenderer | None = None, *,
                        progress: Callable[[int, int], None] | None = None) -> CurveSet:
    """The dataset with every MIDI song's ``audio`` pointing at its rendering; a MIDI that does not render is
    dropped with a warning naming it (its labels go with it)."""
    midi_songs = [s for s in dataset.songs.values() if s.midi is not None and s.audio is None]
    if not midi_songs:
        return dataset
    renderer = renderer or MidiRenderer()
    songs, failed = dict(dataset.songs), []
    for done, song in enumerate(midi_songs, start=1):
        try:
            songs[song.id] = dataclasses.replace(song, audio=renderer.render(song.midi, song.seconds))
        except InputError as error:
            warn(f"skipping song {song.id}: {error}")
            failed.append(song.id)
        progress and progress(done, len(midi_songs))
    rendered = dataset.replace_songs(songs)
    kept = [song for song in songs if song not in failed]
    return rendered.select(songs=kept, name=dataset.name) if failed else rendered
