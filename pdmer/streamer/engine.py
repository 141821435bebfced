"""The stream's engine: audio samples in (any chunking), one V-A frame out per 0.5 s hop.

Per hop (DESIGN.md §7):
- the new 0.5 s slice's log-mel (slices are cut by sample count, each resampled to 44.1 kHz on its own, so the
  result never depends on how the audio arrived in chunks);
- silence (slice RMS below ``silence_db``) is reported, not fed to the model: the caches keep the music before it;
- one ONNX call with the cached local features of the previous <= 59 slices (``pdmer.export.graph``);
- the newest step is emitted, or the step ``lookahead`` hops back (seen with more context, ``lookahead`` x 0.5 s
  later).
Global vectors come from trailing windows (the windows the model was trained with; by default 30 s, a new one every
5 steps). A refresh starts at its anchor step on a worker thread, off the hop's path, and is used from one refresh
period later: steps a .. a+4 use the vector of anchor a-5. So the values do not depend on how fast the worker was,
and a stream from a device gives what ``--fast`` gives on the same audio. Until the first refresh is ready, the
first vector is waited for. ``global_every`` (steps) changes the refresh period: fewer refreshes cost less CPU on
a small machine, more follow changes sooner; the model was trained with its checkpoint's period (a deviation).
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
from dataclasses import dataclass

import numpy as np

from pdmer.data.curves import STEP_SECONDS
from pdmer.errors import InputError

SILENCE_DB = -60.0  # slice RMS in dBFS below which the slice counts as silence
MODEL_WINDOW = 60  # steps the model sees at most: its 30 s training windows


@dataclass
class Frame:
    step: int  # 0.5 s step of the stream this frame describes
    time_s: float  # stream time of that step's start
    valence: float
    arousal: float
    compute_ms: float  # the hop's compute, including any wait for a global vector
    silent: bool = False  # a silent hop: no V-A (valence and arousal are NaN)
    level_db: float = math.nan  # the input level of the hop that produced this frame (slice RMS, dBFS)


class Engine:
    def __init__(self, deployed, rate: int, *, lookahead: int = 0, silence_db: float = SILENCE_DB,
                 start_at_sound: bool = False, global_every: int | None = None):
        from pdmer.model.preprocess import LogMelSlicer, MelConfig

        slice_samples = rate * STEP_SECONDS
        if rate <= 0 or slice_samples != int(slice_samples):
            raise InputError(f"sample rate {rate} Hz does not hold a whole number of samples per 0.5 s slice; use "
                             "an even rate such as 44100 or 48000")
        if not 0 <= lookahead < MODEL_WINDOW:
            raise InputError(f"lookahead must be 0..{MODEL_WINDOW - 1} hops, got {lookahead}")
        self.onnx, self.encoder, self.windows = deployed.onnx, deployed.encoder, deployed.windows
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
            self.windows = dataclasses.replace(self.windows, refresh_steps=global_every)
        self.rate, self.slice_samples = rate, int(slice_samples)
        self.lookahead, self.silence_db = lookahead, silence_db
        # With start_at_sound, stream time 0 is the first sample above the silence level: the slice grid then sits
        # on the music, not on when the device happened to open, so a device and a file give the same slices.
        self.waiting = start_at_sound
        self.skipped = 0  # samples dropped before the first sound
        self.slicer = LogMelSlicer(MelConfig())
        history = (math.ceil(self.windows.seconds / STEP_SECONDS) + 2) * self.slice_samples  # whole slices
        self.audio = np.zeros(history, np.float32)  # ring: sample n lives at n % history; bounded memory
        self.received = 0  # samples pushed so far
        self.step = 0  # next slice to process
        self.local = deque(maxlen=MODEL_WINDOW - 1)  # cached local features of the previous non-silent steps
        self.globals = deque(maxlen=MODEL_WINDOW)  # their global vectors (and the newest one)
        self.steps = deque(maxlen=MODEL_WINDOW)  # which stream step each row of the model's window is
        self.pending: dict[int, Future] = {}  # anchor step -> refresh in flight
        self.vectors: dict[int, np.ndarray] = {}
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdmer-global")

    # -- audio in --------------------------------------------------------------------------------------------------
    def push(self, samples: np.ndarray) -> list[Frame]:
        """Append mono float samples at ``rate``; returns the frames of the hops they completed."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self.waiting:
            loud = np.flatnonzero(np.abs(samples) >= 10 ** (self.silence_db / 20))
            if not loud.size:
                self.skipped += samples.size
                return []
            self.skipped += int(loud[0])
            samples, self.waiting = samples[loud[0]:], False
        frames = []
        while samples.size:
            room = self.slice_samples - (self.received % self.slice_samples)
            take, samples = samples[:room], samples[room:]
            position = self.received % self.audio.size  # a slice never wraps: the ring is whole slices long
            self.audio[position : position + take.size] = take
            self.received += take.size
            if self.received % self.slice_samples == 0:
                frame = self.hop()
                if frame is not None:
                    frames.append(frame)
        return frames

    def tail(self, seconds_back: float, seconds_end: float) -> np.ndarray:
        """Samples from absolute time ``seconds_back`` to ``seconds_end`` (both within the ring)."""
        start, end = round(seconds_back * self.rate), round(seconds_end * self.rate)
        if start < self.received - self.audio.size or end > self.received:
            raise InputError(f"samples {start}..{end} are no longer (or not yet) in the stream's buffer")
        return np.take(self.audio, np.arange(start, end) % self.audio.size)

    # -- global vectors --------------------------------------------------------------------------------------------
    def start_refresh(self, anchor: int) -> None:
        start, end = self.windows.window(anchor, (anchor + 1) * STEP_SECONDS)  # trailing: ends with this slice
        audio = self.tail(start, end).copy()
        self.pending[anchor] = self.worker.submit(lambda: self.encoder.embed(audio, self.rate).numpy())

    def vector_for(self, step: int) -> np.ndarray:
        refresh = self.windows.refresh_steps
        anchor = step - step % refresh
        use = max(0, anchor - refresh)  # one period late, so the worker has a whole period to compute it
        if use not in self.vectors:
            self.vectors[use] = self.pending.pop(use).result()  # waits only at the start (or on a slow machine)
            for old in [a for a in self.vectors if a < use]:
                del self.vectors[old]
        return self.vectors[use]

    # -- one hop ---------------------------------------------------------------------------------------------------
    def hop(self) -> Frame | None:
        import torch

        started = time.perf_counter()
        step = self.step
        self.step += 1
        if step % self.windows.refresh_steps == 0:
            self.start_refresh(step)
        wave = self.tail(step * STEP_SECONDS, (step + 1) * STEP_SECONDS)
        level = 20 * np.log10(max(float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))), 1e-10))
        vector = self.vector_for(step)
        if level < self.silence_db:
            return Frame(step, step * STEP_SECONDS, math.nan, math.nan, (time.perf_counter() - started) * 1e3, True,
                         level)
        slice_44k = torch.from_numpy(wave.copy())
        if self.rate != self.slicer.config.sample_rate:
            import torchaudio

            slice_44k = torchaudio.functional.resample(slice_44k, self.rate, self.slicer.config.sample_rate)
        mel = self.slicer.log_mel(slice_44k[None]).numpy()[None]  # [1, 1, 51, 128]
        self.globals.append(vector)
        past = np.stack(self.local)[None] if self.local else np.zeros((1, 0, self.onnx.local_dim), np.float32)
        result = self.onnx(mel, np.stack(self.globals)[None], past_local=past)
        self.local.append(result.local[0, -1])
        self.steps.append(step)
        if len(self.steps) <= self.lookahead:  # the first `lookahead` hops: nothing old enough to show yet
            return None
        shown, row = self.steps[-1 - self.lookahead], result.va[0, -1 - self.lookahead]
        compute_ms = (time.perf_counter() - started) * 1e3
        return Frame(shown, shown * STEP_SECONDS, float(row[0]), float(row[1]), compute_ms, level_db=level)

    def close(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)
