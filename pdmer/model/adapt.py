"""One-shot adaptation: a few gradient steps on one listener's support curve, without touching the base model.

This is MAML's inner loop (paper eq. 6-7; authors' ``utils/train.py:fast_adapter`` with learn2learn): all trainable
parameters, plain SGD, 16 steps of lr 5e-3 by default. The base model's parameters and buffers are never modified:
adaptation works on copies through ``torch.func.functional_call`` and returns them, so the same routine serves
evaluation, meta-training (first-order, or second-order with ``create_graph``) and listener profiles.

``params="head"`` (not in the paper) adapts everything but the per-slice front end (DSAML's adapter CNN): the
support's local features are then computed once instead of at every step, ~40% less work per step on CPU.
``params="output"`` and ``"bias"`` adapt the last layer only: everything before it is then computed once (first
order), and each step costs one small matrix product.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch
from torch.func import functional_call

from pdmer.errors import InputError
from torch import nn
from torch.nn import functional as F

from pdmer.model.dsaml import DSAMLOutput

Weights = dict[str, torch.Tensor]  # parameters and buffers by state-dict name
PARAMS = ("all", "head", "output", "bias")


@dataclass(frozen=True)
class AdaptConfig:
    steps: int = 16  # authors' train.py --adapt_steps
    lr: float = 5e-3  # authors' train.py inner (fast) lr
    # Dropout on during the steps, as in meta-training's inner loop (the authors never switch to eval mode;
    # params "output" and "bias" run the layers before the last once, in eval mode).
    # Batch-norm statistics then come from the support batch and update the copied buffers only.
    train_mode: bool = True
    window: int = 60  # support sequences longer than this are cut into windows of this many steps (one batch)
    # "all": every trainable parameter (authors); "head": all but the per-slice front end; "output": the last
    # layer only (not in the paper: few parameters, so one song cannot overfit them; see reports/profiles-synth.md);
    # "bias": the last layer's bias only, i.e. a per-listener offset of valence and arousal (not in the paper)
    params: str = "all"

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lr <= 0 or self.window < 1:
            raise InputError(f"adaptation needs steps >= 0, lr > 0 and window >= 1, got {self}")
        if self.params not in PARAMS:
            raise InputError(f"adaptation params={self.params!r} must be one of {', '.join(PARAMS)}")


def front_end_names(model: nn.Module) -> set[str]:
    """State-dict names of the per-slice front end (the part ``model.local_features`` runs)."""
    prefixes = tuple(f"{name}." for name in model.FRONT_END)
    return {name for name, _ in model.named_parameters() if name.startswith(prefixes)}


class _LocalFeatures(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.model.local_features(mel)


def local_features(model: nn.Module, weights: Weights | None, mel: torch.Tensor) -> torch.Tensor:
    """``model.local_features(mel)`` computed with ``weights`` in place of the model's own."""
    if weights is None:
        return model.local_features(mel)
    named = {f"model.{name}": w for name, w in weights.items()}
    return functional_call(_LocalFeatures(model), named, (mel,), strict=True)


def base_weights(model: nn.Module) -> Weights:
    """Detached copies of the model's parameters (trainable ones require grad) and buffers."""
    weights = {name: p.detach().clone().requires_grad_(p.requires_grad) for name, p in model.named_parameters()}
    weights.update({name: b.detach().clone() for name, b in model.named_buffers()})
    return weights


@contextlib.contextmanager
def mode(model: torch.nn.Module, training: bool):
    previous = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(previous)


def model_inputs(inputs: torch.Tensor) -> tuple:
    """(mel, forward's keywords) for a batch that holds log-mel slices [B, T, F, M], or the front end's outputs
    [B, T, L] (a frozen front end: pdmer.train.run.Run.local_pool)."""
    return (inputs, {}) if inputs.ndim == 4 else (None, {"local": inputs})


def run(model: nn.Module, weights: Weights, mel, global_feat: torch.Tensor, **options) -> DSAMLOutput:
    """The model's forward pass with ``weights`` in place of its own (``options``: forward's keywords)."""
    return functional_call(model, weights, (mel, global_feat), options, strict=True)


def forward(model: nn.Module, weights: Weights, inputs, global_feat, config: AdaptConfig) -> DSAMLOutput:
    """``inputs`` are log-mel slices, or local features when the front end stays fixed."""
    if config.params != "all":
        return run(model, weights, None, global_feat, local=inputs)
    return run(model, weights, inputs, global_feat)


def support_windows(mel, global_feat, va, window: int):
    """[T, ...] tensors -> a batch of ``window``-step pieces covering all T steps (the last piece ends at T)."""
    steps = mel.shape[0]
    if steps <= window:
        return mel[None], global_feat[None], va[None]
    starts = list(range(0, steps - window + 1, window))
    if starts[-1] + window < steps:
        starts.append(steps - window)
    pick = lambda x: torch.stack([x[s : s + window] for s in starts])  # noqa: E731
    return pick(mel), pick(global_feat), pick(va)


def adapt(
    model: nn.Module,
    support: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    config: AdaptConfig = AdaptConfig(),
    *,
    weights: Weights | None = None,
    create_graph: bool = False,
) -> tuple[Weights, list[float]]:
    """Adapted weights for the support pieces [(mel [T,F,M], global [T,G], va [T,2]), ...] and the loss per step.

    ``weights`` (default: copies of the model's own) is the starting point; with ``create_graph`` the result stays
    differentiable with respect to it (second-order MAML), otherwise each step is detached (first-order)."""
    if not support:
        raise InputError("adaptation needs at least one support curve")
    pieces = [support_windows(*item, config.window) for item in support]
    same_length = len({p[0].shape[1] for p in pieces}) == 1
    batches = [tuple(torch.cat(parts) for parts in zip(*pieces))] if same_length else pieces
    weights = dict(weights) if weights is not None else base_weights(model)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    if config.params == "head":
        front_end = front_end_names(model)
        trainable = [name for name in trainable if name not in front_end]
    elif config.params == "output":
        trainable = [name for name in trainable if name.startswith(tuple(f"{o}." for o in model.OUTPUT))]
    elif config.params == "bias":
        trainable = [name for name in trainable if name in {f"{o}.bias" for o in model.OUTPUT}]
    for name in trainable:  # e.g. detached weights of an earlier adaptation: start a fresh graph from them
        if not weights[name].requires_grad:
            weights[name] = weights[name].detach().requires_grad_(True)
    if config.params in ("output", "bias") and not create_graph:
        return adapt_last_layer(model, batches, config, weights, trainable)
    if config.params == "all" and batches[0][0].ndim == 3:
        raise InputError("adapting every parameter needs log-mel slices, not the front end's outputs")
    losses = []
    if config.params != "all":
        # The front end is fixed, so its outputs are too: computed once, in eval mode, as prediction will compute
        # them (batch norm uses its running statistics and leaves them as they are). Support pieces of [T, L]
        # are such outputs already (training with a frozen front end).
        with mode(model, False), torch.no_grad():
            batches = [(m if m.ndim == 3 else local_features(model, weights, m), g, v) for m, g, v in batches]
    with mode(model, config.train_mode):
        for _ in range(config.steps):
            loss = sum(model.loss(forward(model, weights, m, g, config), v).total for m, g, v in batches)
            loss = loss / len(batches)
            grads = torch.autograd.grad(loss, [weights[name] for name in trainable], create_graph=create_graph)
            for name, grad in zip(trainable, grads):
                step = weights[name] - config.lr * grad
                weights[name] = step if create_graph else step.detach().requires_grad_(True)
            losses.append(float(loss.detach()))
    return weights, losses


def last_layer_inputs(model: nn.Module, weights: Weights, mel, global_feat) -> tuple[list[torch.Tensor], DSAMLOutput]:
    """What each of ``model.OUTPUT``'s layers receives, and the whole output, from one pass with ``weights``."""
    captured = []
    hooks = [model.get_submodule(name).register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0]))
             for name in model.OUTPUT]
    try:
        slices, options = model_inputs(mel)
        output = run(model, weights, slices, global_feat, **options)
    finally:
        for hook in hooks:
            hook.remove()
    return captured, output


def adapt_last_layer(model: nn.Module, batches, config: AdaptConfig, weights: Weights, trainable: list[str]):
    """:func:`adapt` for the last layer alone (first order). Everything before it does not change, so it runs once,
    in eval mode as prediction runs it; each step then recomputes only the last layer(s), whose outputs side by
    side are the model's (valence, arousal), and the loss (the attention maps it reads stay as they were)."""
    with mode(model, False), torch.no_grad():
        passes = [(*last_layer_inputs(model, weights, m, g), v) for m, g, v in batches]
    losses = []
    for _ in range(config.steps):
        loss = 0.0
        for hidden, output, va in passes:
            outs = [F.linear(h, weights[f"{name}.weight"], weights[f"{name}.bias"])
                    for h, name in zip(hidden, model.OUTPUT)]
            loss = loss + model.loss(dataclasses.replace(output, va=torch.cat(outs, dim=-1)), va).total
        loss = loss / len(passes)
        grads = torch.autograd.grad(loss, [weights[name] for name in trainable])
        for name, grad in zip(trainable, grads):
            weights[name] = (weights[name] - config.lr * grad).detach().requires_grad_(True)
        losses.append(float(loss.detach()))
    return weights, losses
