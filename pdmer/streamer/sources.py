"""Where the stream's audio comes from: a file (at real-time pace, or as fast as possible), raw PCM on standard
input, or an input device."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pdmer.errors import InputError

CHUNK_SECONDS = 0.02  # what an audio callback typically delivers at once (e.g. 1024 samples at 48 kHz is 21 ms)


class FileSource:
    """A file's mono samples in chunks; ``fast=False`` paces them like a live input (real-time)."""

    def __init__(self, path: str | Path, *, fast: bool = False, loop: bool = False):
        from pdmer.audio import load_audio

        self.path = Path(path)
        self.samples, self.rate = load_audio(path)
        self.fast, self.loop = fast, loop
        self.name, self.overruns = self.path.name + (" (looped)" if loop else ""), 0

    def chunks(self, stopping=lambda: False) -> Iterator[np.ndarray]:
        size = max(1, round(self.rate * CHUNK_SECONDS))
        started, played = time.monotonic(), 0  # samples delivered so far, over every pass
        while True:
            for start in range(0, len(self.samples), size):
                if stopping():
                    return
                chunk = self.samples[start : start + size]
                played += chunk.size
                if not self.fast:  # the chunk "arrives" when a live input would have delivered its last sample
                    delay = started + played / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                yield chunk
            if not self.loop:
                return


PCM_FORMATS = {"s16le": np.dtype("<i2"), "s32le": np.dtype("<i4"), "f32le": np.dtype("<f4")}


class StdinSource:
    """Raw interleaved PCM on standard input (e.g. ``parec``, ``ffmpeg -f s16le -``, ``arecord -t raw``), paced by
    whoever writes it; ends at end of input. Channels are downmixed to mono, integers scaled to -1..1."""

    def __init__(self, rate: int, *, channels: int = 1, sample_format: str = "s16le", stream=None):
        if sample_format not in PCM_FORMATS:
            raise InputError(f"unknown PCM format {sample_format!r}; use one of {', '.join(PCM_FORMATS)}")
        if rate <= 0 or channels < 1:
            raise InputError(f"raw PCM needs a positive --rate and --channels, got {rate} Hz, {channels} channels")
        self.rate, self.channels, self.dtype = rate, channels, PCM_FORMATS[sample_format]
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.name, self.overruns = f"stdin ({sample_format}, {channels} ch)", 0

    def chunks(self, stopping=lambda: False) -> Iterator[np.ndarray]:
        frame_bytes = self.dtype.itemsize * self.channels
        size = max(1, round(self.rate * CHUNK_SECONDS)) * frame_bytes
        pending = b""
        while not stopping():
            data = self.stream.read1(size) if hasattr(self.stream, "read1") else self.stream.read(size)
            if not data:
                return  # end of input (a trailing partial sample frame is dropped)
            pending += data
            whole = len(pending) - len(pending) % frame_bytes
            block, pending = pending[:whole], pending[whole:]
            if block:
                yield self.decode(block)

    def decode(self, block: bytes) -> np.ndarray:
        samples = np.frombuffer(block, self.dtype).reshape(-1, self.channels).mean(axis=1, dtype=np.float64)
        if self.dtype.kind == "i":
            samples = samples / float(2 ** (8 * self.dtype.itemsize - 1))
        return samples.astype(np.float32)


PORTAUDIO_HINT = "sudo apt-get install -y libportaudio2"
QUEUE_SECONDS = 10.0  # audio the callback may run ahead of the engine before blocks are dropped (overruns)
STALL_SECONDS = 5.0  # no audio from a started device for this long: it is gone (PortAudio does not always say so)


class NoInputDevice(InputError):
    """No input device could be opened: PortAudio is missing, the machine has none, or the chosen one fails."""


def sounddevice_module():
    """sounddevice, or a clear message when PortAudio is missing."""
    try:
        import sounddevice
    except OSError as error:  # sounddevice raises OSError("PortAudio library not found")
        raise NoInputDevice(f"live audio needs PortAudio ({error}): {PORTAUDIO_HINT}") from None
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
            which = "no default input device" if device is None else f"no input device {device!r}"
            raise NoInputDevice(f"{which} ({error}); pdmer-stream --list-devices shows them") from None
        self.name = info["name"]
        self.rate = int(rate or info["default_samplerate"])
        self.blocks: queue.Queue = queue.Queue(maxsize=max(1, int(QUEUE_SECONDS / CHUNK_SECONDS)))
        self.overruns = 0
        try:
            self.stream = sd.InputStream(device=device, channels=min(2, info["max_input_channels"]),
                                         samplerate=self.rate, dtype="float32", callback=self.callback)
        except sd.PortAudioError as error:
            raise NoInputDevice(f"cannot open input device {self.name!r} at {self.rate} Hz ({error}); try another "
                                "--rate or --device (pdmer-stream --list-devices)") from None
        try:
            self.stream.start()  # now, so that a device that opens but cannot run fails here, not mid-stream
        except sd.PortAudioError as error:
            self.stream.close()
            raise NoInputDevice(f"cannot start input device {self.name!r} ({error}); try another --device "
                                "(pdmer-stream --list-devices)") from None

    def callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overruns += 1
        try:
            self.blocks.put_nowait(indata.mean(axis=1).copy())
        except Exception:  # queue.Full: the engine is behind; drop rather than block the audio thread
            self.overruns += 1

    def chunks(self, stopping) -> Iterator[np.ndarray]:
        """Blocks as they arrive, until ``stopping()`` is true. A device that stops delivering (unplugged, its sound
        server gone) ends the stream with an error: pdmer-stream does not reconnect, a supervisor can restart it."""
        import queue

        last = time.monotonic()
        try:
            while not stopping():
                try:
                    block = self.blocks.get(timeout=0.5)
                except queue.Empty:
                    silent_for = time.monotonic() - last
                    if not self.stream.active or silent_for > STALL_SECONDS:
                        raise InputError(f"input device {self.name!r} stopped delivering audio (no samples for "
                                         f"{silent_for:.1f} s: unplugged, or its sound server gone); the stream ends "
                                         "here") from None
                    continue
                last = time.monotonic()
                yield block
        finally:
            try:
                self.stream.abort()
                self.stream.close()
            except Exception:  # a device already gone may fail to close; the stream is over either way
                pass
