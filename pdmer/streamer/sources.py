"""Where the stream's audio comes from. So far: a file, played at real-time pace or as fast as possible."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

CHUNK_SECONDS = 0.02  # what an audio callback typically delivers at once (e.g. 1024 samples at 48 kHz is 21 ms)


class FileSource:
    """A file's mono samples in chunks; ``fast=False`` paces them like a live input (real-time)."""

    def __init__(self, path: str | Path, *, fast: bool = False):
        from pdmer.audio import load_audio

        self.path = Path(path)
        self.samples, self.rate = load_audio(path)
        self.fast = fast

    def chunks(self) -> Iterator[np.ndarray]:
        size = max(1, round(self.rate * CHUNK_SECONDS))
        started = time.monotonic()
        for index, start in enumerate(range(0, len(self.samples), size)):
            if not self.fast:  # the chunk "arrives" when a live input would have delivered its last sample
                delay = started + (start + size) / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield self.samples[start : start + size]
