"""Procedural music-like songs: a score of sections, its cue timeline at the label grid, and its audio.

A song is a sequence of sections (4-6 of 6-12 s for a 45 s song; fewer for short songs). Each section sets
seven cues, stored normalised to [-1, 1] (``CUE_NAMES`` order) and turned into sound as follows:

- tempo       BPM = 115 + 55 z (60-170): beat-long melody notes, a bass note and a kick on every beat,
              a hi-hat on every off-beat, so the tempo is heard as the onset rate;
- loudness    section gain = -10 + 10 z dB (-20-0 dB) on every voice;
- register    melody centre = MIDI 67 + 9 z (58-76); the chord pad sits an octave and the bass two below;
- brightness  tilt of the harmonic spectrum (harmonic k at k^-(1.6 - z)); the tone's RMS is kept, not its timbre;
- mode        +1 major (major scale, diatonic triads), -1 natural minor;
- dissonance  amount a = (z + 1) / 2: a minor second and a tritone above the chord root at a times the pad's level,
              a copy of the pad detuned by 25 a cents (beating), and melody notes pushed a semitone with chance 0.4 a;
- home        +1 when the section's key (tonic pitch class) is the song's home key, set by the FIRST section, -1 when
              it has modulated away to another tonic (either mode of the home tonic is home); at least one later
              section is away, any number return home. Key is otherwise random, so only memory of the first section
              tells home from away: a dependency longer than one section (> 6 s, usually > 10 s).

A continuous cue is a song-level base (uniform in [-0.5, 0.5]) plus one deviation per section: n values spread evenly
over [-0.5, 0.5] (jittered) in a random order, so every cue moves within every song. Mode takes both values (1 to
n - 1 major sections, in random places). Every cue is drawn independently of the others, so one song shows which of
them a listener follows. Section boundaries lie on the 0.5 s label grid: label i (describing [0.5 i, 0.5 i + 0.5) s)
has exactly one section's cues. Rendering is wavetable synthesis, one numpy expression per note (about 0.15 s for a
45 s song). Everything is determined by the generator passed to ``compose`` (the score keeps a seed for the audio's
own random choices), so the same seed gives the same samples.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from pdmer.data.curves import STEP_SECONDS

RATE = 22050
CUE_NAMES = ("tempo", "loudness", "register", "brightness", "mode", "dissonance", "home")
CONTINUOUS = ("tempo", "loudness", "register", "brightness", "dissonance")
SECTION_SECONDS = (6.0, 12.0)  # shortest and longest section
PREFERRED_SECTIONS = (4, 5, 6)
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSION = {True: (0, 3, 4, 5), False: (0, 3, 4, 5, 6)}  # scale degrees of chords: I IV V vi / i iv v VI VII
TABLE = 2048  # wavetable length, a power of two (phase wraps with a bit mask)
HARMONICS = 10  # at most; fewer for high notes, so that no harmonic passes the Nyquist frequency (no aliasing)
MASTER = 0.9  # fixed output gain: louder sections must stay louder, so songs are never normalised


@dataclass(frozen=True)
class Section:
    start_s: float
    seconds: float
    cues: tuple[float, ...]  # normalised, CUE_NAMES order
    tonic: int  # pitch class of the section's key, 0 = C

    def cue(self, name: str) -> float:
        return self.cues[CUE_NAMES.index(name)]

    @property
    def bpm(self) -> float:
        return 115.0 + 55.0 * self.cue("tempo")

    @property
    def gain_db(self) -> float:
        return -10.0 + 10.0 * self.cue("loudness")

    @property
    def register(self) -> float:
        return 67.0 + 9.0 * self.cue("register")

    @property
    def tilt(self) -> float:
        return 1.6 - self.cue("brightness")

    @property
    def major(self) -> bool:
        return self.cue("mode") > 0

    @property
    def dissonance(self) -> float:
        return (self.cue("dissonance") + 1.0) / 2.0

    def describe(self) -> dict:
        """The section in musical units, for the dataset's self-description."""
        names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
        return {
            "start_s": self.start_s, "seconds": self.seconds, "bpm": round(self.bpm, 2),
            "gain_db": round(self.gain_db, 2), "register_midi": round(self.register, 2), "tilt": round(self.tilt, 3),
            "key": f"{names[self.tonic]} {'major' if self.major else 'minor'}",
            "dissonance": round(self.dissonance, 3), "home": self.cue("home") > 0,
        }


@dataclass(frozen=True)
class Score:
    seconds: float
    sections: tuple[Section, ...]
    render_seed: int  # seeds the audio's own random choices (melody, noise)


def section_lengths(rng: np.random.Generator, seconds: float) -> list[float]:
    """4-6 sections of 6-12 s on the 0.5 s grid summing to ``seconds`` (other counts where the length needs them)."""
    steps = round(seconds / STEP_SECONDS)
    low, high = (round(s / STEP_SECONDS) for s in SECTION_SECONDS)
    feasible = [n for n in range(1, steps // low + 1) if n * low <= steps <= n * high] or [1]
    counts = [n for n in feasible if n in PREFERRED_SECTIONS] or [n for n in feasible if n > 1] or feasible
    n = int(rng.choice(counts))
    lengths = np.full(n, min(low, steps // n))
    for _ in range(steps - int(lengths.sum())):  # hand out the rest one step at a time to sections with room
        room = np.flatnonzero(lengths < high) if n * high >= steps else np.arange(n)
        lengths[rng.choice(room)] += 1
    return [float(s * STEP_SECONDS) for s in lengths]


def compose(rng: np.random.Generator, seconds: float = 45.0) -> Score:
    """A random score: the cue values of each section and its key (see the module docstring)."""
    lengths = section_lengths(rng, seconds)
    n = len(lengths)
    # Per cue: a song-level base plus n deviations spread evenly over [-0.5, 0.5] (jittered), in a random order of
    # its own, so every cue changes within every song, independently of the other cues.
    spread = np.linspace(-0.5, 0.5, n) if n > 1 else np.zeros(1)
    jitter = rng.uniform(-0.25, 0.25, (n, len(CONTINUOUS))) / max(n - 1, 1)
    deviations = np.stack([rng.permutation(spread) for _ in CONTINUOUS], axis=1) + jitter
    continuous = np.clip(rng.uniform(-0.5, 0.5, len(CONTINUOUS)) + deviations, -1.0, 1.0)
    # Both modes, and both home and away, occur in every song of two or more sections, in random places.
    major = rng.permutation(np.arange(n) < rng.integers(1, n)) if n > 1 else rng.random(1) < 0.5
    home = np.r_[True, rng.permutation(np.arange(n - 1) < rng.integers(0, n - 1))] if n > 1 else np.ones(1, bool)
    home_key = int(rng.integers(12))
    away = home_key + rng.choice((2, 3, 4, 5, 7, 8, 9, 10), n)  # any key but the home key
    sections, start = [], 0.0
    for k, length in enumerate(lengths):
        values = dict(zip(CONTINUOUS, continuous[k]), mode=1.0 if major[k] else -1.0, home=1.0 if home[k] else -1.0)
        cues = tuple(round(float(values[name]), 6) for name in CUE_NAMES)
        sections.append(Section(start, length, cues, home_key if home[k] else int(away[k]) % 12))
        start += length
    return Score(float(seconds), tuple(sections), int(rng.integers(2**31)))


def cue_timeline(score: Score) -> np.ndarray:
    """[T, len(CUE_NAMES)] float32: the cues of the section each 0.5 s label lies in (T = seconds / 0.5)."""
    rows = [np.tile(s.cues, (round(s.seconds / STEP_SECONDS), 1)) for s in score.sections]
    return np.concatenate(rows).astype(np.float32)


@functools.lru_cache(maxsize=256)
def wavetable(tilt: float, harmonics: int = HARMONICS) -> np.ndarray:
    """One period of a tone whose harmonic k has amplitude k^-tilt, scaled to unit RMS (brightness is not loudness)."""
    k = np.arange(1, harmonics + 1)
    amplitudes = k ** -tilt
    amplitudes /= np.sqrt((amplitudes**2).sum() / 2)
    phase = 2 * np.pi * np.arange(TABLE) / TABLE
    return (amplitudes[:, None] * np.sin(k[:, None] * phase)).sum(0)


def midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


class Mixer:
    """Adds enveloped notes into one buffer (with a tail so that notes may ring past the end)."""

    def __init__(self, seconds: float, rate: int):
        self.rate = rate
        self.buffer = np.zeros(round((seconds + 2.0) * rate))

    def span(self, start: float, seconds: float) -> tuple[int, np.ndarray]:
        first = round(start * self.rate)
        return first, np.arange(min(round(seconds * self.rate), len(self.buffer) - first)) / self.rate

    def tone(self, start, seconds, pitches, amps, tilt, *, attack=0.005, decay=None, release=0.05, detune=0.0,
             detune_mix=0.0):
        """Wavetable notes (MIDI ``pitches``, one shared envelope): linear attack, exponential decay, linear release
        after ``seconds``; ``detune_mix`` of each comes from a second oscillator ``detune`` cents off (beating)."""
        first, t = self.span(start, seconds + release)
        wave = np.zeros_like(t)
        for pitch, amp in zip(pitches, amps):
            hz = midi_hz(pitch)
            table = wavetable(round(tilt, 3), max(1, min(HARMONICS, int(self.rate / 2.05 / hz))))
            phase = t * (hz * TABLE)
            wave += (amp * (1 - detune_mix)) * table[phase.astype(np.int64) & (TABLE - 1)]
            if detune_mix:
                wave += (amp * detune_mix) * table[(phase * 2 ** (detune / 1200)).astype(np.int64) & (TABLE - 1)]
        envelope = np.minimum(1.0, t / attack) * np.clip((seconds + release - t) / release, 0, 1)
        if decay is not None:
            envelope *= np.exp(-t / decay)
        self.buffer[first : first + len(t)] += envelope * wave

    def kick(self, start, amp):
        first, t = self.span(start, 0.25)
        pitch = 50.0 + 100.0 * np.exp(-t / 0.03)  # falling 150 -> 50 Hz
        phase = 2 * np.pi * np.cumsum(pitch) / self.rate
        self.buffer[first : first + len(t)] += amp * np.exp(-t / 0.07) * np.sin(phase)

    def hat(self, start, amp, rng):
        first, t = self.span(start, 0.06)
        noise = np.diff(rng.standard_normal(len(t) + 1))  # differenced white noise: mostly high frequencies
        self.buffer[first : first + len(t)] += amp * 0.5 * np.exp(-t / 0.015) * noise


def render_section(mixer: Mixer, section: Section, rng: np.random.Generator) -> None:
    """Chord pad (one chord a bar), bass and melody on the beat, kick and hi-hat, all at the section's gain."""
    gain = 10.0 ** (section.gain_db / 20.0)
    beat = 60.0 / section.bpm
    end = section.start_s + section.seconds
    beats = section.start_s + beat * np.arange(int(np.ceil(section.seconds / beat - 1e-9)))
    scale = np.array(MAJOR if section.major else MINOR)
    # Scale notes in MIDI around the register, for the melody's walk.
    notes = np.array([m for m in range(24, 100) if (m - section.tonic) % 12 in scale])
    a = section.dissonance
    progression = [0, *rng.choice(PROGRESSION[section.major], len(beats))]
    tonic = section.tonic + round((section.register - 12 - section.tonic) / 12) * 12  # the pad's octave
    for bar, start in enumerate(beats[::4]):
        degree = progression[bar]
        chord = [tonic + scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
        clashes = [chord[0] + 1, chord[0] + 6]  # minor second and tritone above the chord root
        mixer.tone(start, min(4 * beat, end - start), chord + clashes, [0.1 * gain] * 3 + [0.1 * a * gain] * 2,
                   section.tilt, attack=0.06, release=0.2, detune=25 * a, detune_mix=0.5 * a)
    here = int(np.argmin(abs(notes - section.register)))
    for k, start in enumerate(beats):
        length = min(beat, end - start)
        bar_root = section.tonic + scale[progression[k // 4]]
        bass = bar_root + round((section.register - 24 - bar_root) / 12) * 12
        mixer.tone(start, 0.8 * length, [bass], [0.25 * gain], 3.0, decay=0.6 * beat)  # a dark, round bass
        here = int(np.clip(here + rng.integers(-2, 3), 0, len(notes) - 1))
        if abs(notes[here] - section.register) > 7:  # keep the melody near the register
            here = int(np.argmin(abs(notes - section.register)))
        pitch = notes[here] + (1 if rng.random() < 0.4 * a else 0)
        mixer.tone(start, 0.9 * length, [pitch], [0.22 * gain], section.tilt, decay=0.5 * beat)
        mixer.kick(start, 0.5 * gain)
        if start + beat / 2 < end:
            mixer.hat(start + beat / 2, 0.12 * gain, rng)


def render(score: Score, rate: int = RATE) -> np.ndarray:
    """The song's mono waveform, float32 in (-1, 1), exactly ``score.seconds`` long."""
    mixer = Mixer(score.seconds, rate)
    rng = np.random.default_rng(score.render_seed)
    for section in score.sections:
        render_section(mixer, section, rng)
    return np.tanh(MASTER * mixer.buffer[: round(score.seconds * rate)]).astype(np.float32)


@dataclass
class SynthSong:
    """One generated song: its id, score, cue timeline at the label grid and (rendered on first use) audio."""

    id: str
    score: Score
    rate: int = RATE

    @functools.cached_property
    def cues(self) -> np.ndarray:
        return cue_timeline(self.score)

    @functools.cached_property
    def waveform(self) -> np.ndarray:
        return render(self.score, self.rate)
