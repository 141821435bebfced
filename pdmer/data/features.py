"""Feature cache: each song's log-mel slices and global vectors, computed once per (audio content, config).

Training visits every song many times and the global encoder is frozen, so its outputs are computed once and
stored, as the authors' ``script/dataset.py`` stores ImageBind outputs in ``.pt`` files. Entries are safetensors
files named by the SHA-256 of the audio file's bytes and of the config that made them (mel settings; the encoder's
fingerprint, which includes its weights; the global windows), so editing a song or changing any setting never
returns stale features. Writes are atomic, so concurrent runs and interruptions leave whole entries or none.

Features cover the whole audio: row k is the slice [0.5 k, 0.5 k + 0.5) s. ``SongFeatures.for_curve`` cuts the rows a
curve's labels describe (label i <-> row ``curve.first_step + i``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pdmer import __version__
from pdmer.audio import load_audio
from pdmer.data.cache import default_cache_dir, stable_hash
from pdmer.data.curves import STEP_SECONDS, Curve, warn
from pdmer.errors import InputError
from pdmer.fileio import atomic_path, file_sha256
from pdmer.model.encoders import GlobalEncoder, embed_each, load_global_encoder
from pdmer.model.preprocess import LogMelSlicer, MelConfig

PLACEMENTS = ("trailing", "centred")
# Models saved before pdmer recorded their windows (pdmer 0.1), and the fields they lack in older records.
LEGACY_WINDOWS = {"placement": "trailing", "seconds": 30.0, "refresh_steps": 5, "delay": 0}


@dataclass(frozen=True)
class GlobalWindows:
    """Which audio each step's global vector summarises.

    - "trailing": the ``seconds`` before the end of an anchor step's slice (causal: what the live stream can see);
    - "centred": ``seconds`` centred on the slice, as the authors' test path (it looks ``seconds / 2`` ahead).
    A vector is computed at every ``refresh_steps``-th step (the anchors) and held in between, as the stream
    refreshes it off its hot path; 1 recomputes it at every step. Every 6 steps (3 s, one musicnn patch):
    consecutive windows then share all their 3 s patches but the newest (pdmer.model.patches), so each refresh
    encodes one patch.
    ``delay``: a step uses the vector of the anchor ``delay`` refresh periods before its own. The stream computes
    a refresh on a worker thread while the music plays on and uses it one period later (1), so that no hop waits
    for the encoder; offline prediction and training read the same vectors, so a file's curve is the stream's.
    Models recorded before pdmer knew this read as 0 (each step its own anchor's vector: what they were trained on).
    """

    placement: str = "trailing"
    seconds: float = 30.0  # authors' PDMERModel global_context_length=30
    refresh_steps: int = 6  # 3 s: musicnn's patch (pdmer 0.1 used 5, which models trained then record)
    delay: int = 1  # refresh periods between an anchor and the first step that uses its vector

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise InputError(f"global window placement {self.placement!r} must be one of {', '.join(PLACEMENTS)}")
        if self.seconds <= 0 or self.refresh_steps < 1 or self.delay < 0:
            raise InputError(f"global windows need seconds > 0, refresh_steps >= 1 and delay >= 0, got {self}")

    def anchor(self, step: int) -> int:
        """The anchor step whose window gives step ``step``'s vector."""
        return max(0, step - step % self.refresh_steps - self.delay * self.refresh_steps)

    def span(self, anchor: int, duration: float) -> tuple[float, float]:
        """(start, end) seconds of the window computed at ``anchor`` (within audio of ``duration`` s)."""
        if self.placement == "trailing":
            end = min(duration, STEP_SECONDS * (anchor + 1))
            return max(0.0, end - self.seconds), end
        centre = STEP_SECONDS * (anchor + 0.5)
        return max(0.0, centre - self.seconds / 2), min(duration, centre + self.seconds / 2)

    def window(self, step: int, duration: float) -> tuple[float, float]:
        """(start, end) seconds of the window step ``step``'s vector is computed from."""
        return self.span(self.anchor(step), duration)

    def undelayed(self) -> GlobalWindows:
        return dataclasses.replace(self, delay=0)

    def delayed(self, vectors: torch.Tensor) -> torch.Tensor:
        """[T, G] vectors of these windows without delay (each step its own anchor's) -> with ``delay``: a row
        shift, since step s's anchor is then the one of step s - delay x refresh_steps (the first one before)."""
        rows = torch.clamp(torch.arange(len(vectors)) - self.delay * self.refresh_steps, min=0)
        return vectors[rows]


@dataclass(frozen=True)
class SongFeatures:
    log_mel: torch.Tensor  # [N, frames, mels]: slice k = [0.5 k, 0.5 k + 0.5) s
    global_feat: torch.Tensor  # [N, G]

    def for_curve(self, curve: Curve) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-mel [T, F, M], global [T, G], V-A [T, 2]) of the labels of ``curve`` that have a whole slice of audio."""
        first, available = curve.first_step, len(self.log_mel)
        count = min(len(curve.va), available - first)
        if count <= 0:
            raise InputError(f"{curve.source}: labels start at {curve.start_s} s, after the audio's last whole slice")
        if count < len(curve.va) - 1:  # one label past the end is normal (e.g. 61 labels for a 45 s clip)
            warn(f"{curve.source}: {len(curve.va) - count} label(s) past the end of the audio are not used")
        rows = slice(first, first + count)
        return self.log_mel[rows], self.global_feat[rows], torch.from_numpy(curve.va[:count].copy())


def recorded_inputs(context: dict[str, str], global_dim: int, *, source: str, imagebind=None,
                    device="cpu", threads: int | None = None) -> tuple[GlobalEncoder, GlobalWindows]:
    """The global encoder and windows a model was trained with, as its metadata records them (a checkpoint's
    ``deployment_metadata``, an export's metadata_props); the encoder's size is checked against the model's.
    Windows recorded without a refresh period are pdmer 0.1's (every 5 steps); without a delay, 0."""
    spec = json.loads(context["global_encoder"])
    options = dict(spec["options"])
    if spec["name"] == "musicnn":
        options.setdefault("patches", "spread")  # recorded before "grid" existed: what it was trained with
        options["threads"] = threads
    encoder = load_global_encoder(spec["name"], imagebind_checkpoint=imagebind, device=device, **options)
    if encoder.dim != global_dim:
        raise InputError(f"{source} expects {global_dim}-d global vectors; its {encoder.name} encoder gives "
                         f"{encoder.dim}-d: use the encoder it was trained with")
    recorded = json.loads(context["global_windows"]) if "global_windows" in context else {}
    windows = GlobalWindows(**{**LEGACY_WINDOWS, **recorded})
    return encoder, windows


def inputs_metadata(encoder: GlobalEncoder, windows: GlobalWindows = GlobalWindows()) -> dict[str, str]:
    """The checkpoint metadata that records which global encoder and windows feed a model (what training writes,
    and :func:`recorded_inputs` reads back)."""
    return {"global_encoder": json.dumps(encoder.spec), "global_windows": json.dumps(asdict(windows))}


def global_vectors(encoder: GlobalEncoder, windows: GlobalWindows, waveform, rate: int, steps: int,
                   progress=None) -> torch.Tensor:
    """[steps, G]: each distinct window embedded once (sharing the patches windows have in common), then spread
    over the steps that use it. ``progress(done, total)`` is called after each encoder pass (the slow part)."""
    duration = len(waveform) / rate
    spans = [windows.window(step, duration) for step in range(steps)]
    distinct = list(dict.fromkeys(spans))
    if hasattr(encoder, "embed_windows"):
        embedded = encoder.embed_windows(waveform, rate, distinct, progress)
    else:  # an encoder of the caller's own, with embed alone
        embedded = embed_each(encoder, waveform, rate, distinct, progress)
    vectors = dict(zip(distinct, embedded))
    return torch.stack([vectors[span] for span in spans]).float()


class FeatureCache:
    """``cache.song(audio_path)`` -> :class:`SongFeatures`, computed on first use and read from disk after."""

    def __init__(
        self,
        encoder: GlobalEncoder,
        *,
        root: str | Path | None = None,
        mel: MelConfig = MelConfig(),
        windows: GlobalWindows = GlobalWindows(),
    ):
        self.encoder, self.mel_config, self.windows = encoder, mel, windows
        self.root = Path(root) if root is not None else default_cache_dir()
        self.slicer = LogMelSlicer(mel)
        # Entries hold each step's own anchor's vector (no delay): the delay is a shift applied when they are read,
        # so models with and without it share entries (and the key is what it was before delays existed).
        stored = {k: v for k, v in asdict(windows).items() if k != "delay"}
        self.keys = {
            "log_mel": stable_hash({"mel": asdict(mel)}),
            "global": stable_hash({"mel": asdict(mel), "encoder": encoder.fingerprint, "windows": stored}),
        }
        self.computed = 0  # entries computed (not read) by this instance: tests and progress reports use it

    def entry(self, digest: str, kind: str) -> Path:
        return self.root / digest[:2] / digest / f"{kind}-{self.keys[kind]}.safetensors"

    def song(self, audio_path: str | Path) -> SongFeatures:
        path = Path(audio_path)
        if not path.is_file():
            raise InputError(f"audio file {path} does not exist")
        digest = file_sha256(path)
        tensors = {kind: self.read(self.entry(digest, kind)) for kind in self.keys}
        if any(t is None for t in tensors.values()):
            waveform, rate = load_audio(path)
            if tensors["log_mel"] is None:
                tensors["log_mel"] = self.write(self.entry(digest, "log_mel"), self.slicer(waveform, rate), path)
            if tensors["global"] is None:
                features = self.global_features(waveform, rate, len(tensors["log_mel"]))
                tensors["global"] = self.write(self.entry(digest, "global"), features, path)
        return SongFeatures(tensors["log_mel"], self.windows.delayed(tensors["global"]))

    def global_features(self, waveform, rate: int, steps: int) -> torch.Tensor:
        return global_vectors(self.encoder, self.windows.undelayed(), waveform, rate, steps)

    @staticmethod
    def read(path: Path) -> torch.Tensor | None:
        if not path.is_file():
            return None
        try:
            return load_file(str(path))["features"]
        except (SafetensorError, OSError, KeyError):
            warn(f"feature cache entry {path} is unreadable; computing it again")
            return None

    def write(self, path: Path, features: torch.Tensor, source: Path) -> torch.Tensor:
        features = features.detach().float().contiguous()
        metadata = {"pdmer": __version__, "source": str(source), "key": path.stem}
        with atomic_path(path) as temporary:
            save_file({"features": features}, str(temporary), metadata=metadata)
        self.computed += 1
        return features
