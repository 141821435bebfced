"""Training examples and how batches and meta-learning tasks are drawn from them.

- DMER batches: random clips of the songs' averaged curves (traditional DMER, mean labels).
- Listener tasks (paper eq. 6): one task per listener; its support and query songs all carry that listener's labels.
- Random tasks (paper eq. 5, the ablation): support and query drawn at random from the averaged curves.

Every draw comes from a generator seeded by (run seed, step), so a run is the same whether it is resumed or split
across processes, and no random state needs saving.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pdmer.data.curves import MEAN, QUADRANT_SIGNS, Curve, CurveSet, warn
from pdmer.data.features import FeatureCache
from pdmer.errors import InputError
from pdmer.fileio import file_sha256


@dataclass(frozen=True)
class Example:
    """One listener's (or the mean) curve of one song with its features, all [T, ...] on the 0.5 s grid."""

    song: str
    listener: str
    mel: torch.Tensor  # [T, 51, 128]
    global_feat: torch.Tensor  # [T, G]
    va: torch.Tensor  # [T, 2]

    def clip(self, rng: np.random.Generator, window: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A random ``window``-step piece (the whole curve when it is shorter)."""
        start = int(rng.integers(len(self.va) - window + 1)) if len(self.va) > window else 0
        rows = slice(start, start + window)
        return self.mel[rows], self.global_feat[rows], self.va[rows]

    def whole(self):
        return self.mel, self.global_feat, self.va


@dataclass
class Task:
    listener: str
    support: list[Example]  # adapted on whole (cut into windows by the adaptation)
    query: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # a batch of random clips of the query songs
    kind: str = "curves"  # "levels": the query's va rows hold each clip's quadrant signs (song_sign_loss)


def examples(split: CurveSet, curves: list[Curve], cache: FeatureCache,
             progress: Callable[[str], None] | None = None) -> list[Example]:
    """Features for each curve (computed once per song and cached on disk)."""
    split.require_audio()
    out, songs, total = [], {}, len({c.song for c in curves})
    for curve in curves:
        if curve.song not in songs:
            songs[curve.song] = cache.song(split.songs[curve.song].audio)
            progress and progress(f"features {len(songs)}/{total}")
        mel, glob, va = songs[curve.song].for_curve(curve)
        out.append(Example(curve.song, curve.listener, mel, glob, va))
    return out


def level_examples(split: CurveSet, cache: FeatureCache,
                   progress: Callable[[str], None] | None = None) -> list[Example]:
    """Each song with a quadrant, its va rows its quadrant's signs (+-1) at every step. A song whose audio
    does not decode is skipped with a warning naming it."""
    split.require_audio()
    out = []
    for done, (song, quadrant) in enumerate(sorted(split.quadrants.items()), start=1):
        try:
            features = cache.song(split.songs[song].audio)
        except InputError as error:
            warn(f"skipping {song}: {error}")
            continue
        signs = torch.tensor(QUADRANT_SIGNS[quadrant], dtype=torch.float32).expand(len(features.log_mel), 2)
        out.append(Example(song, MEAN, features.log_mel, features.global_feat, signs))
        progress and progress(f"features {done}/{len(split.quadrants)}")
    if not out:
        raise InputError(f"{split.name}: no song with a quadrant has readable audio")
    return out


def fingerprint(split: CurveSet, curves: list[Curve]) -> str:
    """SHA-256 of the training labels and the audio they describe: a resumed run must see the same data."""
    digest = hashlib.sha256()
    for song, quadrant in sorted(split.quadrants.items()):
        digest.update(f"{song}|{quadrant}|{file_sha256(split.songs[song].audio)}|".encode())
    for curve in sorted(curves, key=lambda c: (c.song, c.listener)):
        digest.update(f"{curve.song}|{curve.listener}|{curve.start_s}|".encode())
        digest.update(np.ascontiguousarray(curve.va, dtype=np.float32).tobytes())
    for song in sorted({c.song for c in curves}):
        digest.update(file_sha256(split.songs[song].audio).encode())
    return digest.hexdigest()


def hashed(fingerprints: list[str]) -> str:
    """One fingerprint for several sources' (a mix: the order of the sources is part of it)."""
    return hashlib.sha256("|".join(fingerprints).encode()).hexdigest()


def step_rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step])


def task_seed(seed: int, step: int, index: int) -> int:
    """Seed for the dropout of task ``index`` of ``step``: the same in any process that computes that task."""
    return int(np.random.default_rng([seed, step, index, 7]).integers(2**62))


class TaskSampler:
    """Draws meta-batches of tasks: per listener (eq. 6) or at random over the averaged curves (eq. 5)."""

    def __init__(self, pool: list[Example], *, kind: str, support: int, query: int, window: int):
        """``support=0``: tasks of query songs only (training on per-listener labels without MAML)."""
        self.kind, self.support, self.query, self.window = kind, support, query, window
        needed = support + query
        if kind == "listener":
            by_listener: dict[str, list[Example]] = {}
            for example in pool:
                if example.listener != MEAN:
                    by_listener.setdefault(example.listener, []).append(example)
            short = sorted(who for who, songs in by_listener.items() if len(songs) < needed)
            if short:
                warn(f"{len(short)} listener(s) with fewer than support + query = {needed} songs are skipped: "
                     f"{', '.join(short[:8])}{' ...' if len(short) > 8 else ''}")
            self.groups = {who: songs for who, songs in sorted(by_listener.items()) if len(songs) >= needed}
            if not self.groups:
                raise InputError(f"no listener has support + query = {needed} songs: lower --query, or use a "
                                 "dataset with per-listener curves (DEAM: the per-rater files)")
        else:
            means = [e for e in pool if e.listener == MEAN]
            if len(means) < needed:
                raise InputError(f"random tasks need support + query = {needed} songs; the split has {len(means)}")
            self.groups = {MEAN: means}

    def sample(self, rng: np.random.Generator, count: int) -> list[Task]:
        names = list(self.groups)
        if self.kind == "listener":
            chosen = rng.choice(len(names), size=count, replace=count > len(names))
        else:
            chosen = np.zeros(count, dtype=int)
        tasks = []
        for index in chosen:
            songs = self.groups[names[index]]
            picked = rng.choice(len(songs), size=self.support + self.query, replace=False)
            query = stack_clips(rng, [songs[i] for i in picked[self.support :]], self.window)
            tasks.append(Task(names[index], [songs[i] for i in picked[: self.support]], query))
        return tasks


def stack_clips(rng: np.random.Generator, examples_: list[Example], window: int):
    """A batch of random clips, cut to the shortest so they stack: (mel [B,W,F,M], global [B,W,G], va [B,W,2])."""
    clips = [e.clip(rng, window) for e in examples_]
    shortest = min(len(c[2]) for c in clips)
    return tuple(torch.stack([part[:shortest] for part in parts]) for parts in zip(*clips))
