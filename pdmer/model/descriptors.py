"""Classic music-emotion descriptors of a window of audio: a small, interpretable global feature that needs no weights.

Before learned embeddings, music emotion recognition regressed valence and arousal on a handful of perceptual
descriptors (Eerola, Lartillot & Toiviainen, ISMIR 2009, with MIRtoolbox; the DEAM baselines on openSMILE sets):
loudness, brightness, register, roughness, mode and key clarity, tempo and pulse clarity. This module computes such
a set with torch's STFT, in under 0.1 s per 30 s window on one CPU core, and is the global encoder ``descriptors``
(``pdmer.model.encoders``). Every value is on a scale of about -1..1 or 0..1, so a model's linear layer can take it
as it is; ``DESCRIPTOR_NAMES`` lists them in vector order:

- loudness: mean and standard deviation of the frames' RMS level in dBFS / 20 (0 = full scale);
- timbre and register: spectral centroid (log2 of Hz / 1 kHz), spectral flatness, pitch height (the strongest
  partial between 80 Hz and 1.6 kHz, log2 of Hz / 440 Hz), and the log energy share of each of 8 octaves from 55 Hz;
- harmony, from a chroma of spectral peaks between 150 Hz and 1.5 kHz: per 3 s stretch (songs modulate), the
  correlation with the Krumhansl-Kessler major and minor key profiles at their best key, averaged (their difference
  estimates the mode, the larger is key clarity); the share of half seconds whose best-fitting triad is major (as
  -1..1); key return, how alike each stretch's pitch classes are to the first stretch's; the chroma's entropy; and
  how much energy sits a semitone and a tritone apart within a frame (a roughness proxy);
- tonality relative to the key: per 3 s stretch, the diatonic set (the pitch classes of one major scale) that fits
  its chroma best. A major key and its relative minor share that set, and tell themselves apart by which chords they
  use: the share of half seconds whose triad is the set's I, ii, iii, IV, V or vi (a major key's I never occurs in
  its relative minor, whose iv and v are the set's ii and iii). How much of the window stays in the opening
  stretch's set, and how much moves to a set three fifths away (the same tonic in the other mode);
- rhythm: the autocorrelation of an onset-strength envelope, its largest value in 10 tempo bands from 40 to 240 BPM
  (a coarse tempogram), the BPM of the strongest lag (log2 of BPM / 120) and that autocorrelation (pulse clarity),
  and onsets per second / 10.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pdmer.errors import InputError

VERSION = 3  # of the definitions below: part of the feature cache's key, so raise it when any of them changes
SAMPLE_RATE = 22050
N_FFT = 2048  # 93 ms: 10.8 Hz bins, fine enough to tell semitones apart from about 100 Hz up
HOP = 512  # 23 ms: onset envelope resolution (2.6 frames per 16th note at 170 BPM)
OCTAVE_EDGES_HZ = [55.0 * 2**k for k in range(9)]  # 55 Hz .. 14 kHz: 8 octaves
CHROMA_RANGE_HZ = (150.0, 1500.0)  # the register of chords and melodies
TEMPO_BANDS_BPM = np.geomspace(40.0, 240.0, 11)  # 10 bands
KEY_SECONDS = 3.0  # key and mode are estimated per stretch this long: about half the shortest section
# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
# Diatonic triads by (semitones above the set's major tonic, minor?): I ii iii IV V vi (vii° is not a major or
# minor triad). In the relative minor these are III iv v VI VII i.
DEGREES = {"I": (0, False), "ii": (2, True), "iii": (4, True), "IV": (5, False), "V": (7, False), "vi": (9, True)}

DESCRIPTOR_NAMES = (
    "rms_db_mean", "rms_db_std",
    "centroid_log2", "flatness", "pitch_height", *(f"octave_{k}" for k in range(8)),
    "major_key_r", "minor_key_r", "mode", "key_clarity", "major_chords", "key_return", "chroma_entropy",
    "semitone_clash", "tritone_clash",
    *(f"degree_{name}" for name in DEGREES), "key_same", "key_parallel",
    *(f"tempo_band_{k}" for k in range(10)), "tempo_log2", "pulse_clarity", "onset_rate",
)
DIM = len(DESCRIPTOR_NAMES)


def key_profiles() -> tuple[torch.Tensor, torch.Tensor]:
    """[12, 12] z-scored major and minor profiles, row k = the profile of the key with tonic pitch class k."""
    def rotations(profile):
        base = torch.tensor(profile, dtype=torch.float32)
        base = (base - base.mean()) / base.std(unbiased=False)
        return torch.stack([torch.roll(base, k) for k in range(12)])
    return rotations(MAJOR_PROFILE), rotations(MINOR_PROFILE)


def triad_templates() -> torch.Tensor:
    """[24, 12]: the 12 major triads (root = row), then the 12 minor triads."""
    rows = [[float((pc - root) % 12 in intervals) for pc in range(12)]
            for intervals in ((0, 4, 7), (0, 3, 7)) for root in range(12)]
    return torch.tensor(rows, dtype=torch.float32)


def diatonic_templates() -> torch.Tensor:
    """[12, 12] z-scored pitch-class sets of the 12 major scales, row k = the scale on tonic k."""
    base = torch.tensor([float(pc in MAJOR_SCALE) for pc in range(12)])
    base = (base - base.mean()) / base.std(unbiased=False)
    return torch.stack([torch.roll(base, k) for k in range(12)])


def stretch_ids(rows: int, per_stretch: int) -> torch.Tensor:
    """[rows] the KEY_SECONDS stretch each row (frame or half second) falls in, counted from the window's start; a
    tail shorter than half a stretch joins the stretch before it."""
    ids = torch.arange(rows) // per_stretch
    if rows > per_stretch and 0 < rows % per_stretch < per_stretch / 2:
        ids[ids == ids.max()] -= 1
    return ids


def stretch_sums(rows: torch.Tensor, per_stretch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """([stretches, 12] summed chroma of each stretch, [rows] stretch ids) of ``rows`` [N, 12]."""
    ids = stretch_ids(len(rows), per_stretch)
    return torch.zeros(int(ids.max()) + 1, rows.shape[1]).index_add_(0, ids, rows), ids


def zscore(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Along the last axis (pitch classes)."""
    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, unbiased=False, keepdim=True) + eps)


def bin_frequencies() -> torch.Tensor:
    """[N_FFT // 2 + 1] centre frequency of each STFT bin, Hz."""
    return torch.arange(N_FFT // 2 + 1, dtype=torch.float32) * SAMPLE_RATE / N_FFT


def pitch_class_matrix(freqs: torch.Tensor) -> torch.Tensor:
    """[bins, 12]: 1 where an STFT bin's centre frequency is nearest that pitch class (inside CHROMA_RANGE_HZ)."""
    matrix = torch.zeros(len(freqs), 12, dtype=torch.float32)
    inside = (freqs >= CHROMA_RANGE_HZ[0]) & (freqs <= CHROMA_RANGE_HZ[1])
    classes = (torch.round(12 * torch.log2(freqs[inside] / 440.0)) + 69).long() % 12
    matrix[inside.nonzero().squeeze(1), classes] = 1.0
    return matrix


def octave_matrix(freqs: torch.Tensor) -> torch.Tensor:
    """[bins, 8]: 1 where an STFT bin lies in that octave band."""
    edges = torch.tensor(OCTAVE_EDGES_HZ, dtype=torch.float32)
    return ((freqs[:, None] >= edges[None, :-1]) & (freqs[:, None] < edges[None, 1:])).float()


class Descriptors:
    """``Descriptors()(wave_22050)`` -> [DIM] float32 descriptors of the whole wave (mono, SAMPLE_RATE)."""

    def __init__(self):
        self.window = torch.hann_window(N_FFT, dtype=torch.float32)
        self.freqs = bin_frequencies()
        self.chroma = pitch_class_matrix(self.freqs)
        self.octaves = octave_matrix(self.freqs)
        self.major, self.minor = key_profiles()
        self.triads = triad_templates()
        self.diatonic = diatonic_templates()

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        wave = wave.float()
        if wave.numel() < N_FFT:  # shorter windows happen (a stream's first moments): tempo and key are then weak
            raise InputError(f"audio window is {wave.numel() / SAMPLE_RATE:.3f} s long; descriptors need at least "
                             f"{N_FFT / SAMPLE_RATE:.3f} s")
        power = torch.stft(wave, N_FFT, HOP, window=self.window, center=True, return_complex=True).abs().T ** 2
        eps = 1e-12
        values = [*self.loudness(power, eps), *self.timbre(power, eps), *self.harmony(power, eps),
                  *self.rhythm(power, eps)]
        return torch.tensor(values, dtype=torch.float32)

    def loudness(self, power: torch.Tensor, eps: float) -> list[float]:
        # Parseval: a frame's mean power over the Hann window's energy is its mean-square amplitude.
        mean_square = 2 * power.sum(1) / (N_FFT * (self.window**2).sum())
        rms_db = 10 * torch.log10(mean_square + eps).clamp(min=-120.0)
        return [float(rms_db.mean()) / 20, float(rms_db.std(unbiased=False)) / 20]

    def timbre(self, power: torch.Tensor, eps: float) -> list[float]:
        total = power.sum(1) + eps
        weights = total / total.sum()  # louder frames count more, as they do to a listener
        centroid = (power @ self.freqs) / total
        centroid_log2 = float((weights * torch.log2(centroid.clamp(min=20.0) / 1000.0)).sum())
        audible = power[:, 1:] + eps
        flatness = torch.exp(torch.log(audible).mean(1)) / audible.mean(1)
        octaves = (power @ self.octaves).sum(0)
        octaves = octaves / (octaves.sum() + eps)
        # Pitch height: the strongest bin between 80 Hz and 1.6 kHz, per frame (log2 of Hz, centred on 440 Hz).
        band = (self.freqs >= 80.0) & (self.freqs <= 1600.0)
        peak_hz = self.freqs[band][power[:, band].argmax(1)]
        height = float((weights * torch.log2(peak_hz / 440.0)).sum())
        return [centroid_log2, float((weights * flatness).sum()), height,
                *(torch.log10(octaves + 1e-4) / 4 + 1).tolist()]

    def harmony(self, power: torch.Tensor, eps: float) -> list[float]:
        # Chroma from spectral peaks only: the kick's sweep, the hi-hat's noise and the gaps between partials
        # would otherwise smear every pitch class.
        peaks = torch.zeros_like(power, dtype=torch.bool)
        peaks[:, 1:-1] = (power[:, 1:-1] > power[:, :-2]) & (power[:, 1:-1] >= power[:, 2:])
        frames = (power * peaks).sqrt() @ self.chroma  # magnitude, as chroma features usually are
        per_frame = frames / (frames.sum(1, keepdim=True) + eps)
        loud = frames.sum(1) / (frames.sum() + eps)
        semitone = (per_frame * torch.roll(per_frame, 1, dims=1)).sum(1)
        tritone = (per_frame * torch.roll(per_frame, 6, dims=1)).sum(1)
        chroma = frames.sum(0) / (frames.sum() + eps)
        entropy = float(-(chroma * torch.log(chroma + eps)).sum()) / math.log(12)
        # Per half second: is the best-fitting triad major or minor? (Major keys are mostly major chords.)
        size = max(1, round(0.5 * SAMPLE_RATE / HOP))
        count = len(frames) // size
        chords = frames[: count * size].reshape(count, size, 12).sum(1) if count else frames.sum(0, keepdim=True)
        chords = chords / (chords.sum(1, keepdim=True) + eps)
        sounding = (chords.sum(1) > 0).float()  # silent half seconds have no chord
        triad = (chords @ self.triads.T).argmax(1)  # 0-11 major triads by root, 12-23 minor
        major_share = float(((triad < 12).float() * sounding).sum() / (sounding.sum() + eps))
        # Key per stretch of KEY_SECONDS (songs modulate: a whole window's chroma mixes its keys), then averaged;
        # "return": the mean correlation of each stretch's pitch classes with the first stretch's (itself included).
        zs = zscore(stretch_sums(frames, max(1, round(KEY_SECONDS * SAMPLE_RATE / HOP)))[0], eps)
        major_r = ((zs @ self.major.T).max(1).values / 12).numpy()
        minor_r = ((zs @ self.minor.T).max(1).values / 12).numpy()
        returns = float((zs * zs[0]).mean(1).mean())
        return [float(major_r.mean()), float(minor_r.mean()), float((major_r - minor_r).mean()),
                float(np.maximum(major_r, minor_r).mean()), 2 * major_share - 1, returns, entropy,
                6 * float((loud * semitone).sum()), 6 * float((loud * tritone).sum()),
                *self.tonality(chords, triad, sounding, eps)]

    def tonality(self, halves: torch.Tensor, triad: torch.Tensor, sounding: torch.Tensor, eps: float) -> list[float]:
        """Degree shares of the half seconds' triads and key stability (module docstring); ``halves`` [H, 12] are
        the half seconds' normalised chroma, ``triad`` [H] their best-fitting triads (``triad_templates`` rows)."""
        sums, stretch = stretch_sums(halves, max(1, round(KEY_SECONDS / 0.5)))
        tonics = (zscore(sums, eps) @ self.diatonic.T).argmax(1)  # major tonic of each best-fitting diatonic set
        degree = (triad % 12 - tonics[stretch]) % 12
        minor = triad >= 12
        weight = sounding / (sounding.sum() + eps)
        shares = [float((weight * ((degree == step) & (minor == is_minor)).float()).sum())
                  for step, is_minor in DEGREES.values()]
        moves = (tonics - tonics[0]) % 12
        return [*shares, float((moves == 0).float().mean()), float(((moves == 3) | (moves == 9)).float().mean())]

    def rhythm(self, power: torch.Tensor, eps: float) -> list[float]:
        log_power = torch.log(power + eps)
        flux = torch.relu(log_power[1:] - log_power[:-1]).mean(1)  # onset strength per frame
        flux = flux - flux.mean()
        frame_rate = SAMPLE_RATE / HOP
        lags = torch.arange(1, min(len(flux), math.ceil(60.0 * frame_rate / TEMPO_BANDS_BPM[0]) + 1))
        bpm = 60.0 * frame_rate / lags.float()
        energy = float((flux**2).sum()) + eps
        autocorr = torch.stack([(flux[lag:] * flux[:-lag]).sum() for lag in lags.tolist()]) / energy \
            if len(lags) else torch.zeros(0, dtype=torch.float32)
        bands = []
        for low, high in zip(TEMPO_BANDS_BPM[:-1], TEMPO_BANDS_BPM[1:]):
            inside = (bpm >= low) & (bpm < high)
            bands.append(float(autocorr[inside].max()) if inside.any() else 0.0)
        usable = (bpm >= TEMPO_BANDS_BPM[0]) & (bpm <= TEMPO_BANDS_BPM[-1])
        if usable.any():
            best = int(torch.argmax(torch.where(usable, autocorr, torch.tensor(-math.inf, dtype=torch.float32))))
            tempo_log2, clarity = math.log2(float(bpm[best]) / 120.0), float(autocorr[best])
        else:
            tempo_log2, clarity = 0.0, 0.0
        # Onsets per second: local maxima of the onset envelope above its mean + one standard deviation.
        peaks = (flux[1:-1] > flux[:-2]) & (flux[1:-1] >= flux[2:]) & (flux[1:-1] > flux.std(unbiased=False))
        onset_rate = float(peaks.sum()) / (len(flux) / frame_rate) / 10.0 if len(flux) > 2 else 0.0
        return [*bands, tempo_log2, clarity, onset_rate]
