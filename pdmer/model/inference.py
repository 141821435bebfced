"""Whole-song prediction with sliding windows, as the model was trained on windows of 60 steps (30 s).

Authors' ``utils/inference.py:slide_inference`` and DAMFF's test protocol (DESIGN.md §5): windows of 60 steps slide
over the song one step at a time; the first window gives steps 0..59; after it, valence at step t comes from the
window that ends at t (hop 0.5 s), arousal from windows every 5 steps (hop 2.5 s), each giving its newest 5 steps.
(The authors' indexing skips step 60 and re-pads at the end; here every step comes from a window that ends at
or just after it.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pdmer.model.adapt import Weights, local_features, mode, run


@dataclass(frozen=True)
class SlidingWindows:
    window: int = 60  # steps per window: the authors' 30 s training clips
    hops: tuple[int, int] = (1, 5)  # (valence, arousal) steps between the windows each dimension is read from
    batch: int = 32  # windows per forward pass


def window_ends(steps: int, window: int, hop: int) -> torch.Tensor:
    """For each step, the last step of the window whose output it is taken from."""
    ends = torch.arange(steps)
    ends = torch.clamp(ends, min=window - 1)  # the first window covers steps 0..window-1
    # After the first window: the first window end on the hop grid (window-1 + k*hop) at or after the step.
    later = ends > window - 1
    ends[later] = window - 1 + torch.ceil((ends[later] - (window - 1)) / hop).long() * hop
    return torch.clamp(ends, max=steps - 1)


@torch.no_grad()
def predict_song(
    model: nn.Module,
    mel: torch.Tensor,
    global_feat: torch.Tensor,
    *,
    weights: Weights | None = None,
    windows: SlidingWindows = SlidingWindows(),
) -> torch.Tensor:
    """V-A [T, 2] for one song's log-mel [T, F, M] and per-step global vectors [T, G] (eval mode)."""
    steps = mel.shape[0]
    with mode(model, False):
        if weights is None:
            forward = lambda m, g, **kw: model(m, g, **kw).va  # noqa: E731
        else:
            forward = lambda m, g, **kw: run(model, weights, m, g, **kw).va  # noqa: E731
        if steps <= windows.window:
            return forward(mel[None], global_feat[None])[0]
        # The adapter sees one slice at a time (eval-mode batch norm), so each slice's local feature is computed
        # once for the song, not once per window: ~60x less of the model's most expensive part.
        local = local_features(model, weights, mel[None])[0]
        outputs = {}
        for chunk in window_batches(steps, windows):
            starts = [end - windows.window + 1 for end in chunk]
            batch_local = torch.stack([local[s : s + windows.window] for s in starts])
            batch_global = torch.stack([global_feat[s : s + windows.window] for s in starts])
            for end, va in zip(chunk, forward(None, batch_global, local=batch_local)):
                outputs[end] = va
        return assemble(steps, windows, outputs)


def window_batches(steps: int, windows: SlidingWindows) -> list[list[int]]:
    """The last steps of the windows a song of ``steps`` (> window) needs, in batches of ``windows.batch``."""
    needed = sorted(set(torch.cat([window_ends(steps, windows.window, hop) for hop in windows.hops]).tolist()))
    return [needed[i : i + windows.batch] for i in range(0, len(needed), windows.batch)]


def assemble(steps: int, windows: SlidingWindows, outputs: dict) -> torch.Tensor:
    """[steps, 2]: each dimension's step read from the window its hop assigns it (``outputs``: end -> [window, 2])."""
    result = torch.empty(steps, 2)
    for column, hop in enumerate(windows.hops):
        for step, end in enumerate(window_ends(steps, windows.window, hop).tolist()):
            # the window ending at `end` starts at end - window + 1; the step's row within it:
            result[step, column] = torch.as_tensor(outputs[end])[step - (end - windows.window + 1), column]
    return result
