"""Where the stream's audio comes from: a file (at real-time pace, or as fast as possible), raw PCM on standard
input, or an input device."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pdmer.audio import looks_like_text
from pdmer.errors import InputError

CHUNK_SECONDS = 0.02  # what an audio callback typically delivers at once (e.g. 1024 samples at 48 kHz is 21 ms)


class FileSource:
    """A file's mono samples in chunks; ``fast=False`` paces them like a live input (real-time)."""

    def __init__(self, path: str | Path, *, fast: bool = False, loop: bool = False):
        from pdmer.audio import load_audio

        self.path = Path(path)
        samples, self.rate = load_audio(path)
        self.samples, self.nonfinite = finite(samples)
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


def finite(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """(the samples with NaN and infinities made silence, how many there were). One NaN fed to the model would
    poison every frame after it; such samples mostly mean bytes read in the wrong --format."""
    bad = ~np.isfinite(samples)
    count = int(bad.sum())
    if count:
        samples = np.where(bad, np.float32(0), samples).astype(np.float32)
    return samples, count


PCM_FORMATS = {"s16le": np.dtype("<i2"), "s32le": np.dtype("<i4"), "f32le": np.dtype("<f4")}
HEADER_BYTES = 4096  # held back at the start of standard input to recognise it: two MPEG audio frames fit
DECODE_HINT = ("use --source FILE, or decode it to raw PCM first (ffmpeg -i FILE -f s16le -ac 1 -ar 44100 - | "
               "pdmer-stream --source -)")


def container(header: bytes) -> str | None:
    """The compressed format whose magic bytes start ``header`` (None: none known)."""
    if header.startswith(b"ID3") or mpeg_frames(header):
        return "MP3"
    if header.startswith(b"fLaC"):
        return "FLAC"
    if header.startswith(b"OggS"):
        return "Ogg"
    if header[:4] in (b"RIFF", b"RF64") and header[8:12] == b"WAVE":
        return "WAV"
    if header[4:8] == b"ftyp":
        return "MP4/M4A"
    return None


MPEG_KBPS = {  # bitrate index -> kbit/s, per (MPEG-1?, layer)
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits


def mpeg_frame_bytes(header: bytes) -> int | None:
    """Length of the MPEG audio frame whose 4-byte header starts ``header`` (None: not a valid frame header)."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer = (header[1] >> 3) & 3, 4 - ((header[1] >> 1) & 3)
    bitrate_index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values, or "free format" (which no encoder writes by default)
    mpeg1 = version == 3
    kbps = MPEG_KBPS[mpeg1, min(layer, 2) if not mpeg1 else layer][bitrate_index]
    rate = MPEG_RATES[version][rate_index]
    if layer == 1:
        return (12 * kbps * 1000 // rate + padding) * 4
    return (144 if mpeg1 or layer == 2 else 72) * kbps * 1000 // rate + padding


def mpeg_frames(header: bytes) -> bool:
    """Two MPEG audio frames back to back: one frame sync could be two PCM samples, two in a row are not."""
    length = mpeg_frame_bytes(header)
    return length is not None and mpeg_frame_bytes(header[length : length + 4]) is not None


def refuse_non_pcm(header: bytes) -> None:
    kind = container(header)
    if kind:
        raise InputError(f"standard input holds {kind} data, not raw PCM: {DECODE_HINT}")
    if looks_like_text(header):
        raise InputError(f"standard input holds text, not raw PCM audio: {DECODE_HINT}")


class StdinSource:
    """Raw interleaved PCM on standard input (e.g. ``parec``, ``ffmpeg -f s16le -``, ``arecord -t raw``), paced by
    whoever writes it; ends at end of input. Channels are downmixed to mono, integers scaled to -1..1."""

    def __init__(self, rate: int, *, channels: int = 1, sample_format: str = "s16le", stream=None):
        if sample_format not in PCM_FORMATS:
            raise InputError(f"unknown PCM format {sample_format!r}; use one of {', '.join(PCM_FORMATS)}")
        if rate <= 0 or channels < 1:
            raise InputError(f"raw PCM needs a positive --rate and --channels, got {rate} Hz, {channels} channels")
        self.rate, self.channels, self.dtype = rate, channels, PCM_FORMATS[sample_format]
        self.sample_format = sample_format
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.name, self.overruns = f"stdin ({sample_format}, {channels} ch)", 0
        self.bytes_read = self.nonfinite = 0

    def chunks(self, stopping=lambda: False) -> Iterator[np.ndarray]:
        """Raises InputError if the input starts like a compressed file or text, which would stream as noise."""
        frame_bytes = self.dtype.itemsize * self.channels
        size = max(1, round(self.rate * CHUNK_SECONDS)) * frame_bytes
        pending, checked = b"", False
        while not stopping():
            data = self.stream.read1(size) if hasattr(self.stream, "read1") else self.stream.read(size)
            self.bytes_read += len(data)
            pending += data
            if not checked and (not data or len(pending) >= HEADER_BYTES):
                refuse_non_pcm(pending)
                checked = True
            if checked:  # until then, the first bytes wait to be recognised (about 50 ms of 44.1 kHz s16le)
                whole = len(pending) - len(pending) % frame_bytes
                block, pending = pending[:whole], pending[whole:]
                if block:
                    yield self.decode(block)
            if not data:
                return  # end of input (a trailing partial sample frame is dropped)

    def decode(self, block: bytes) -> np.ndarray:
        samples = np.frombuffer(block, self.dtype).reshape(-1, self.channels).mean(axis=1, dtype=np.float64)
        if self.dtype.kind == "i":
            samples = samples / float(2 ** (8 * self.dtype.itemsize - 1))
        samples, bad = finite(samples.astype(np.float32))
        self.nonfinite += bad
        return samples


PORTAUDIO_HINT = "sudo apt-get install -y libportaudio2"
QUEUE_SECONDS = 10.0  # audio the callback may run ahead of the engine before blocks are dropped (overruns)
STALL_SECONDS = 5.0  # no audio from a started device for this long: it is gone (PortAudio does not always say so)
REOPEN_FIRST_S, REOPEN_MAX_S = 0.5, 5.0  # a lost device is tried again after 0.5 s, the wait doubling up to 5 s


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
    as do PortAudio's own input-overflow flags; the stream never blocks the callback and never grows.

    With ``reconnect``, a device that goes away mid-stream (unplugged, its sound server restarted) is reopened until
    it is back; while it is gone, ``lost`` says why (None while it delivers)."""

    def __init__(self, device: str | int | None = None, *, rate: int | None = None, reconnect: bool = False):
        import queue

        sd = sounddevice_module()
        self.sd, self.device, self.reconnect = sd, device, reconnect
        info = self.query(device)
        self.name = info["name"]
        self.rate = int(rate or info["default_samplerate"])
        self.blocks: queue.Queue = queue.Queue(maxsize=max(1, int(QUEUE_SECONDS / CHUNK_SECONDS)))
        self.overruns = 0
        self.lost: str | None = None
        self.losses, self.lost_s = 0, 0.0  # how often the device went away, for how long in all
        self.stream = self.open(device, info)

    def query(self, device):
        try:
            return self.sd.query_devices(device, kind="input")
        except (ValueError, self.sd.PortAudioError) as error:
            which = "no default input device" if device is None else f"no input device {device!r}"
            raise NoInputDevice(f"{which} ({error}); pdmer-stream --list-devices shows them") from None

    def open(self, device, info):
        """A started PortAudio input stream on ``device`` at ``self.rate`` (the rate the engine was built for)."""
        sd = self.sd
        try:
            stream = sd.InputStream(device=device, channels=min(2, info["max_input_channels"]),
                                    samplerate=self.rate, dtype="float32", callback=self.callback)
        except sd.PortAudioError as error:
            raise NoInputDevice(f"cannot open input device {self.name!r} at {self.rate} Hz ({error}); try another "
                                "--rate or --device (pdmer-stream --list-devices)") from None
        try:
            stream.start()  # now, so that a device that opens but cannot run fails here, not mid-stream
        except sd.PortAudioError as error:
            stream.close()
            raise NoInputDevice(f"cannot start input device {self.name!r} ({error}); try another --device "
                                "(pdmer-stream --list-devices)") from None
        return stream

    def reopen(self) -> None:
        """The same device again, after PortAudio has listed the devices anew: one plugged back in may have another
        index (sounddevice's documented way to refresh the list is _terminate + _initialize)."""
        self.sd._terminate()
        self.sd._initialize()
        # A device chosen by index is found again by its name; the default input is whatever is the default now.
        device = self.name if isinstance(self.device, int) else self.device
        self.stream = self.open(device, self.query(device))

    def close_stream(self) -> None:
        if self.stream is None:
            return
        try:
            self.stream.abort()
            self.stream.close()
        except Exception:  # a device already gone may fail to close; it is closed for us either way
            pass
        self.stream = None

    def callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overruns += 1
        try:
            self.blocks.put_nowait(indata.mean(axis=1).copy())
        except Exception:  # queue.Full: the engine is behind; drop rather than block the audio thread
            self.overruns += 1

    def chunks(self, stopping) -> Iterator[np.ndarray]:
        """Blocks as they arrive, until ``stopping()`` is true. A device that stops delivering (unplugged, its sound
        server gone) is reopened with ``reconnect`` (empty blocks come out meanwhile, twice a second, so that the
        caller can tell its receivers), else ends the stream with an InputError."""
        import queue

        last = time.monotonic()
        try:
            while not stopping():
                try:
                    block = self.blocks.get(timeout=0.5)
                except queue.Empty:
                    silent_for = time.monotonic() - last
                    if self.stream.active and silent_for <= STALL_SECONDS:
                        continue
                    reason = (f"input device {self.name!r} stopped delivering audio (no samples for "
                              f"{silent_for:.1f} s: unplugged, or its sound server gone)")
                    if not self.reconnect:
                        raise InputError(f"{reason}; the stream ends here (--exit-on-device-loss)") from None
                    yield from self.wait_for_device(reason, stopping)
                    last = time.monotonic()
                    continue
                last = time.monotonic()
                yield block
        finally:
            self.close_stream()

    def wait_for_device(self, reason: str, stopping) -> Iterator[np.ndarray]:
        """Empty blocks every half second until the device opens again (or ``stopping()``): first after
        REOPEN_FIRST_S, then waiting twice as long after each failure, up to REOPEN_MAX_S."""
        self.close_stream()
        self.lost, self.losses, since = reason, self.losses + 1, time.monotonic()
        wait = REOPEN_FIRST_S
        next_try = since + wait
        while not stopping():
            yield np.zeros(0, np.float32)
            time.sleep(min(0.5, max(0.0, next_try - time.monotonic())))
            if time.monotonic() < next_try:
                continue
            try:
                self.reopen()
                break
            except (InputError, ValueError, self.sd.PortAudioError):
                wait = min(2 * wait, REOPEN_MAX_S)
                next_try = time.monotonic() + wait
        self.lost_s += time.monotonic() - since
        self.lost = None
