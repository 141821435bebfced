"""Where the stream's audio comes from: a file (at real-time pace, or as fast as possible) or an input device."""

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
        self.name, self.overruns = self.path.name, 0

    def chunks(self, stopping=lambda: False) -> Iterator[np.ndarray]:
        size = max(1, round(self.rate * CHUNK_SECONDS))
        started = time.monotonic()
        for start in range(0, len(self.samples), size):
            if stopping():
                return
            if not self.fast:  # the chunk "arrives" when a live input would have delivered its last sample
                delay = started + (start + size) / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield self.samples[start : start + size]


PORTAUDIO_HINT = "sudo apt-get install -y libportaudio2"
QUEUE_SECONDS = 10.0  # audio the callback may run ahead of the engine before blocks are dropped (overruns)


def sounddevice_module():
    """sounddevice, or a clear message when PortAudio is missing."""
    try:
        import sounddevice
    except OSError as error:  # sounddevice raises OSError("PortAudio library not found")
        from pdmer.errors import InputError

        raise InputError(f"live audio needs PortAudio ({error}): {PORTAUDIO_HINT}") from None
    return sounddevice


def list_devices() -> list[str]:
    sd = sounddevice_module()
    return [f"{index}: {device['name']} ({device['max_input_channels']} in, {device['default_samplerate']:.0f} Hz)"
            for index, device in enumerate(sd.query_devices()) if device["max_input_channels"] > 0]


class DeviceSource:
    """An input device through a PortAudio callback stream. The callback only copies the block (downmixed to mono)
    into a bounded queue: no model work on the audio thread. A full queue drops the block and counts an overrun,
    as do PortAudio's own input-overflow flags; the stream never blocks the callback and never grows."""

    def __init__(self, device: str | int | None = None, *, rate: int | None = None):
        import queue

        sd = sounddevice_module()
        self.sd = sd
        try:
            info = sd.query_devices(device, kind="input")
        except (ValueError, sd.PortAudioError) as error:
            from pdmer.errors import InputError

            raise InputError(f"no input device {device!r} ({error}); pdmer-stream --list-devices shows them") from None
        self.name = info["name"]
        self.rate = int(rate or info["default_samplerate"])
        self.blocks: queue.Queue = queue.Queue(maxsize=max(1, int(QUEUE_SECONDS / CHUNK_SECONDS)))
        self.overruns = 0
        self.error: str | None = None
        self.stream = sd.InputStream(device=device, channels=min(2, info["max_input_channels"]),
                                     samplerate=self.rate, dtype="float32", callback=self.callback)

    def callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overruns += 1
        try:
            self.blocks.put_nowait(indata.mean(axis=1).copy())
        except Exception:  # queue.Full: the engine is behind; drop rather than block the audio thread
            self.overruns += 1

    def chunks(self, stopping) -> Iterator[np.ndarray]:
        """Blocks as they arrive, until ``stopping()`` is true; a device that stops delivering is an error."""
        import queue

        from pdmer.errors import InputError

        self.stream.start()
        try:
            while not stopping():
                try:
                    yield self.blocks.get(timeout=0.5)
                except queue.Empty:
                    if not self.stream.active:
                        raise InputError(f"input device {self.name!r} stopped delivering audio (was it unplugged?); "
                                         "the stream ends here") from None
        finally:
            self.stream.abort()
            self.stream.close()
