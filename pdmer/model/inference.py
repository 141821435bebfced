"""Whole-song prediction on the stream's causal path: step t's value is what ``pdmer-stream`` sends for it.

The stream feeds the model one 0.5 s slice per step and emits the newest row of a window of at most 60 steps
(30 s, the training clips): the slices fed before it and its own. Offline prediction reads the same rows: for each
step, the model on the window of fed steps that ends there, its newest row. Nothing after a step reaches its value,
so a curve from a file is the curve a live stream would have sent (``pdmer predict`` and ``pdmer-stream --source
FILE --fast`` agree within 1e-3, tested). This replaces the authors' offline protocol (``utils/inference.py``:
valence from windows every 0.5 s, arousal every 2.5 s, the first 30 s from the first window's rows, which look
ahead), because a listener's profile and a lighting desk see the live values.

Silent slices (RMS below the stream's silence level) are not fed, as in the stream: a window holds the newest fed
steps, and a silent step has no value (NaN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pdmer.model.adapt import Weights, local_features, mode, run


@dataclass(frozen=True)
class SlidingWindows:
    window: int = 60  # steps per window: the authors' 30 s training clips, the stream's memory
    batch: int = 32  # windows per forward pass


def window_rows(steps: int, window: int, silent=None) -> list[np.ndarray]:
    """For each fed step, in order, the rows of its window: the newest ``window`` fed steps ending with it."""
    fed = np.arange(steps) if silent is None else np.flatnonzero(~np.asarray(silent, bool))
    return [fed[max(0, k - window + 1) : k + 1] for k in range(len(fed))]


def newest_rows(steps: int, windows: SlidingWindows, newest: Callable[[np.ndarray], np.ndarray],
                silent=None, *, every_row: Callable[[np.ndarray], np.ndarray] | None = None,
                width: int = 2) -> np.ndarray:
    """[steps, width]: ``newest(rows [B, L])`` -> [B, width] is the model's newest row for each of a batch of windows
    of equal length; silent steps are NaN. ``every_row(rows [L])`` -> [L, width], for a causal model: each row of
    one window is then the newest row of the window that ends there, so the windows shorter than
    ``windows.window`` (the song's start) are read from one pass."""
    result = np.full((steps, width), np.nan, np.float32)
    by_length: dict[int, list[np.ndarray]] = {}
    all_rows = window_rows(steps, windows.window, silent)
    if every_row is not None and all_rows:
        first = all_rows[min(len(all_rows), windows.window) - 1]  # the first full window, or the whole song
        result[first] = every_row(first)
        all_rows = all_rows[len(first):]
    for rows in all_rows:
        by_length.setdefault(len(rows), []).append(rows)
    for group in by_length.values():
        for start in range(0, len(group), windows.batch):
            batch = np.stack(group[start : start + windows.batch])
            result[batch[:, -1]] = newest(batch)
    return result


@torch.no_grad()
def predict_song(
    model: nn.Module,
    mel: torch.Tensor,
    global_feat: torch.Tensor,
    *,
    weights: Weights | None = None,
    windows: SlidingWindows = SlidingWindows(),
    silent=None,
    with_last_inputs: bool = False,
):
    """V-A [T, 2] for one song's log-mel [T, F, M] and per-step global vectors [T, G] (eval mode). With
    ``with_last_inputs``: (V-A, [T, H]) the input of the last layer (``model.OUTPUT``) at each step, from which a
    model adapted on its last layer alone predicts the song without running the rest again."""
    with mode(model, False):
        # The adapter sees one slice at a time (eval-mode batch norm), so each slice's local feature is computed
        # once for the song, not once per window: ~60x less of the model's most expensive part.
        local = local_features(model, weights, mel[None])[0]

        captured = []  # the last layer's inputs of the pass just run
        hook = model.get_submodule(model.OUTPUT[0]).register_forward_hook(
            lambda _m, inputs, _o: captured.append(inputs[0])) if with_last_inputs else None

        def rows_va(rows: np.ndarray) -> np.ndarray:  # [B, L] step indices -> [B, L, 2 (+ H)]
            index = torch.from_numpy(rows)
            captured.clear()
            if weights is None:
                va = model(None, global_feat[index], local=local[index]).va
            else:
                va = run(model, weights, None, global_feat[index], local=local[index]).va
            return torch.cat([va, *captured], dim=-1).numpy()

        causal = getattr(model.config, "causal", False)  # DAMFF and CRNN configs have no such field
        every_row = (lambda rows: rows_va(rows[None])[0]) if causal else None  # noqa: E731
        width = 2 + (model.get_submodule(model.OUTPUT[0]).in_features if with_last_inputs else 0)
        try:
            both = newest_rows(len(mel), windows, lambda rows: rows_va(rows)[:, -1], silent, every_row=every_row,
                               width=width)
        finally:
            hook and hook.remove()
        va = torch.from_numpy(both[:, :2].copy())
        return (va, torch.from_numpy(both[:, 2:].copy())) if with_last_inputs else va
