"""The stream's engine: audio samples in (any chunking), one V-A frame out per hop (0.5 s, or less).

The model hears 0.5 s slices, 60 at most. With ``hop`` = 0.5 s there is one grid of slices; with a shorter hop
(0.1 s: ``pdmer-stream --hop 0.1``) there are 0.5 / hop interleaved grids, offset by one hop each, and every hop
completes a slice on one of them: a frame every 0.1 s, each from the newest complete slice and the previous
slices of its own grid. A change in the music then reaches OSC after 0.05 s on average instead of 0.25 s, for
0.5 / hop times the model's compute.

Per hop (DESIGN.md §7):
- the newest 0.5 s slice's log-mel (slices are cut by sample count, each resampled to 44.1 kHz on its own, so the
  result never depends on how the audio arrived in chunks);
- silence (slice RMS below ``silence_db``) is reported, not fed to the model: the caches keep the music before it;
- one ONNX call with the cached local features of the previous <= 59 slices of its grid (``pdmer.export.graph``);
- the newest step is emitted, or the step ``lookahead`` slices back (seen with more context, ``lookahead`` x 0.5 s
  later).
Global vectors come from trailing windows (the windows the model was trained with; by default 30 s, a new one every
6 steps of the first grid). A refresh starts at its anchor step on a worker thread, off the hop's path, and is used
from one refresh period later (``GlobalWindows.delay`` = 1): steps a .. a+5 use the vector of anchor a-6 (the other
grids: that of the first grid's newest complete slice). So the values do not depend on how fast the worker was, a
stream from a device gives what ``--fast`` gives on the same audio, and ``pdmer predict`` reads the same vectors.
Until the first refresh is ready, the first vector is waited for (and every refresh, for models recorded with
delay 0).
A musicnn "grid" encoder keeps its 3 s patches between refreshes (pdmer.model.patches): a refresh encodes the
newest patch only. ``global_every`` (steps) changes the refresh period: fewer refreshes cost less CPU on a small
machine, more follow changes sooner; the model was trained with its checkpoint's period (a deviation).
A model trained on centred (offline) windows gets trailing windows of the same length, with a warning: a live
stream cannot hear ahead.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from pdmer.audio import SILENCE_DB, first_sound, level_db
from pdmer.data.curves import STEP_SECONDS
from pdmer.errors import InputError

MODEL_WINDOW = 60  # steps the model sees at most: its 30 s training windows


@dataclass
class Frame:
    step: int  # hop of the stream this frame describes: its slice starts at step x hop
    time_s: float  # stream time of that slice's start
    valence: float
    arousal: float
    compute_ms: float  # the hop's compute, including any wait for a global vector
    silent: bool = False  # a silent hop: no V-A (valence and arousal are NaN)
    level_db: float = math.nan  # the input level of the hop that produced this frame (slice RMS, dBFS)


@dataclass
class Grid:
    """One grid of 0.5 s slices: what the model remembers of its previous non-silent slices."""

    local: deque = field(default_factory=lambda: deque(maxlen=MODEL_WINDOW - 1))  # their cached local features
    globals: deque = field(default_factory=lambda: deque(maxlen=MODEL_WINDOW))  # their global vectors (and the newest)
    starts: deque = field(default_factory=lambda: deque(maxlen=MODEL_WINDOW))  # the hop each row's slice starts at


HOPS = (0.1, 0.25, 0.5)  # seconds: 0.5 s divided into whole hops of whole 10 ms


class Engine:
    def __init__(self, deployed, rate: int, *, lookahead: int = 0, silence_db: float = SILENCE_DB,
                 start_at_sound: bool = False, global_every: int | None = None, hop: float = STEP_SECONDS):
        from pdmer.model.patches import PATCH_SECONDS, PatchCache
        from pdmer.model.preprocess import LogMelSlicer, MelConfig

        slice_samples = rate * STEP_SECONDS
        if rate <= 0 or slice_samples != int(slice_samples):
            raise InputError(f"sample rate {rate} Hz does not hold a whole number of samples per 0.5 s slice; use "
                             "an even rate such as 44100 or 48000")
        if not any(math.isclose(hop, allowed) for allowed in HOPS):
            raise InputError(f"hop {hop} s must be one of {', '.join(map(str, HOPS))} (0.5 s in whole hops)")
        self.grids_count = round(STEP_SECONDS / hop)
        if (slice_samples / self.grids_count) != int(slice_samples / self.grids_count):
            raise InputError(f"sample rate {rate} Hz does not hold a whole number of samples per {hop} s hop")
        if not 0 <= lookahead < MODEL_WINDOW:
            raise InputError(f"lookahead must be 0..{MODEL_WINDOW - 1} hops, got {lookahead}")
        self.onnx, self.encoder, self.windows = deployed.onnx, deployed.encoder, deployed.windows
        patched = getattr(self.encoder, "patched", False)  # a musicnn "grid" encoder: windows share 3 s patches
        if self.windows.placement != "trailing":
            warnings.warn(f"this model was trained on {self.windows.placement} global windows, which look ahead; "
                          "a live stream gets trailing windows of the same length, so its values differ from "
                          "`pdmer predict`'s. Stream a model trained with global_placement = \"trailing\" for "
                          "the values it was trained to give", stacklevel=2)
            self.windows = dataclasses.replace(self.windows, placement="trailing")
        if global_every is not None:
            if not 1 <= global_every <= MODEL_WINDOW:
                raise InputError(f"the global vector's refresh period must be 1..{MODEL_WINDOW} steps "
                                 f"(0.5..{MODEL_WINDOW * STEP_SECONDS:.0f} s), got {global_every}")
            patch_steps = round(PATCH_SECONDS / STEP_SECONDS)
            if patched and global_every % patch_steps:
                # Windows that end between patch boundaries share no patches: each refresh would encode all ten.
                raise InputError(f"this model's global encoder works on 3 s patches: refresh every multiple of "
                                 f"3 s (3, 6, 9, ...), not {global_every * STEP_SECONDS:g} s")
            self.windows = dataclasses.replace(self.windows, refresh_steps=global_every)
        self.rate, self.slice_samples = rate, int(slice_samples)
        self.hop_s, self.hop_samples = STEP_SECONDS / self.grids_count, self.slice_samples // self.grids_count
        self.lookahead, self.silence_db = lookahead, silence_db
        # With start_at_sound, stream time 0 is the first sample above the silence level: the slice grid then sits
        # on the music, not on when the device happened to open, so a device and a file give the same slices.
        self.waiting = start_at_sound
        self.skipped = 0  # samples dropped before the first sound
        self.slicer = LogMelSlicer(MelConfig())
        history = (math.ceil(self.windows.seconds / STEP_SECONDS) + 2) * self.slice_samples  # whole slices
        self.audio = np.zeros(history, np.float32)  # ring: sample n lives at n % history; bounded memory
        self.received = 0  # samples pushed so far
        self.step = 0  # hops processed (the next slice ends at (step + grids) x hop)
        self.grids = [Grid() for _ in range(self.grids_count)]
        self.pending: dict[int, Future] = {}  # anchor step (of the first grid) -> refresh in flight
        self.vectors: dict[int, np.ndarray] = {}
        self.patches = PatchCache(self.encoder) if patched else None
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdmer-global")

    @property
    def processed_s(self) -> float:
        """Stream time up to the end of the newest slice processed."""
        return (self.step - 1) * self.hop_s + STEP_SECONDS if self.step else 0.0

    # -- audio in --------------------------------------------------------------------------------------------------
    def push(self, samples: np.ndarray) -> list[Frame]:
        """Append mono float samples at ``rate``; returns the frames of the hops they completed."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self.waiting:
            start = first_sound(samples, self.silence_db)
            if start is None:
                self.skipped += samples.size
                return []
            self.skipped += start
            samples, self.waiting = samples[start:], False
        frames = []
        while samples.size:
            room = self.hop_samples - (self.received % self.hop_samples)
            take, samples = samples[:room], samples[room:]
            position = self.received % self.audio.size  # a hop never wraps: the ring is whole slices long
            self.audio[position : position + take.size] = take
            self.received += take.size
            if self.received % self.hop_samples == 0 and self.received >= self.slice_samples:
                frame = self.hop()
                if frame is not None:
                    frames.append(frame)
        return frames

    def tail(self, seconds_back: float, seconds_end: float) -> np.ndarray:
        """Samples from absolute time ``seconds_back`` to ``seconds_end`` (both within the ring)."""
        start, end = round(seconds_back * self.rate), round(seconds_end * self.rate)
        if start < self.received - self.audio.size or end > self.received:
            raise InputError(f"samples {start}..{end} are no longer (or not yet) in the stream's buffer")
        # At most two slices of the ring, copied: a refresh reads 30 s on the hop's path, and indexing it sample by
        # sample (np.take over an arange) cost that hop ~30-60 ms on 2 cores where two copies cost ~1 ms.
        first, count = start % self.audio.size, end - start
        if first + count <= self.audio.size:
            return self.audio[first : first + count].copy()
        return np.concatenate([self.audio[first:], self.audio[: first + count - self.audio.size]])

    # -- global vectors --------------------------------------------------------------------------------------------
    def start_refresh(self, anchor: int) -> None:
        start, end = self.windows.span(anchor, (anchor + 1) * STEP_SECONDS)  # trailing: ends with this slice
        audio = self.tail(start, end)
        self.pending[anchor] = self.worker.submit(self.embed, audio, start)

    def embed(self, audio: np.ndarray, start: float) -> np.ndarray:
        """The worker's job: the vector of the window that starts ``start`` s into the stream."""
        if self.patches is None:
            return self.encoder.embed(audio, self.rate).numpy()
        vector = self.patches.windows(audio, self.rate, [None], offset=start)[0]
        self.patches.forget_before(start)  # later windows start later
        return vector.numpy()

    def vector_for(self, step: int) -> np.ndarray:
        """The global vector of the first grid's slice ``step``."""
        use = self.windows.anchor(step)  # delay 1: one period late, so the worker has a whole period for it
        if use not in self.vectors:
            self.vectors[use] = self.pending.pop(use).result()  # waits only at the start (or on a slow machine)
            for old in [a for a in self.vectors if a < use]:
                del self.vectors[old]
        return self.vectors[use]

    # -- one hop ---------------------------------------------------------------------------------------------------
    def hop(self) -> Frame | None:
        """The slice that ends now, on the grid whose turn it is."""
        import torch

        started = time.perf_counter()
        first = self.step  # the slice starts at this hop
        self.step += 1
        grid = self.grids[first % self.grids_count]
        newest = (first + self.grids_count) // self.grids_count - 1  # the first grid's newest complete slice
        if first % self.grids_count == 0 and newest % self.windows.refresh_steps == 0:
            self.start_refresh(newest)
        start_s = first * self.hop_s
        wave = self.tail(start_s, start_s + STEP_SECONDS)
        level = level_db(wave)
        vector = self.vector_for(newest)
        if level < self.silence_db:
            return Frame(first, start_s, math.nan, math.nan, (time.perf_counter() - started) * 1e3, True, level)
        slice_44k = torch.from_numpy(wave)  # tail() copied it out of the ring
        if self.rate != self.slicer.config.sample_rate:
            import torchaudio

            slice_44k = torchaudio.functional.resample(slice_44k, self.rate, self.slicer.config.sample_rate)
        mel = self.slicer.log_mel(slice_44k[None]).numpy()[None]  # [1, 1, 51, 128]
        grid.globals.append(vector)
        past = np.stack(grid.local)[None] if grid.local else np.zeros((1, 0, self.onnx.local_dim), np.float32)
        result = self.onnx(mel, np.stack(grid.globals)[None], past_local=past)
        grid.local.append(result.local[0, -1])
        grid.starts.append(first)
        if len(grid.starts) <= self.lookahead:  # the first `lookahead` slices: nothing old enough to show yet
            return None
        shown, row = grid.starts[-1 - self.lookahead], result.va[0, -1 - self.lookahead]
        compute_ms = (time.perf_counter() - started) * 1e3
        return Frame(shown, shown * self.hop_s, float(row[0]), float(row[1]), compute_ms, level_db=level)

    def close(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)
