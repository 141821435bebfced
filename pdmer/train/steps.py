"""One optimisation step's gradient: a MAML meta-gradient over tasks, or a plain DMER mini-batch gradient.

MAML (paper eq. 4, §Training & Inference Process): for each task, adapt a copy of the weights on the support song
(:func:`pdmer.model.adapt.adapt`, which never touches the model), score the adapted weights on the query clips, and
accumulate the gradient of that query loss with respect to the base weights. First-order (the authors' default):
the gradient at the adapted weights stands in for it. Second-order: the inner steps keep their graph and the
gradient flows back through them. Batch-norm running statistics of the base model follow the query passes.

The gradient is summed over the tasks a process computes; :mod:`pdmer.train.distributed` adds the other processes'
sums, and the caller divides by the meta-batch size.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from pdmer.model.adapt import AdaptConfig, adapt, mode, model_inputs, run
from pdmer.model.loss import song_sign_loss
from pdmer.train.data import Task


@dataclass
class StepStats:
    loss: float = 0.0  # summed query loss (mean per task after dividing by the count)
    inner_first: float = 0.0  # summed support loss before / after adaptation: is the inner loop learning?
    inner_last: float = 0.0
    count: int = 0

    def add(self, other: StepStats) -> None:
        self.loss += other.loss
        self.inner_first += other.inner_first
        self.inner_last += other.inner_last
        self.count += other.count


class NonFiniteLoss(RuntimeError):
    pass


def trainable(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def forward(model: nn.Module, mel: torch.Tensor, glob: torch.Tensor):
    """The model on a training batch: log-mel slices, or a frozen front end's outputs."""
    mel, options = model_inputs(mel)
    return model(mel, glob, **options)


def task_gradient(model: nn.Module, task: Task, adaptation: AdaptConfig | None, *, first_order: bool,
                  device: torch.device) -> tuple[list[torch.Tensor], StepStats]:
    """The gradient of one task's query loss with respect to the base weights (``adaptation`` None: no inner
    loop, the plain gradient on the task's songs)."""
    params = trainable(model)
    stats = StepStats(count=1)
    to_device = lambda tensors: tuple(t.to(device) for t in tensors)  # noqa: E731
    mel, glob, va = to_device(task.query)
    # cuDNN's LSTM has no double backward: second-order MAML on CUDA uses PyTorch's own LSTM kernels instead.
    second_order_on_cuda = not first_order and adaptation is not None and device.type == "cuda"
    plain_kernels = torch.backends.cudnn.flags(enabled=False) if second_order_on_cuda else contextlib.nullcontext()
    with mode(model, True), plain_kernels:
        if task.kind == "levels":  # song-level quadrants: no inner loop, the sign of each clip's mean
            loss = song_sign_loss(forward(model, mel, glob).va, va[:, 0])
            targets = [p for _, p in params]
        elif adaptation is None:
            loss = model.loss(forward(model, mel, glob), va).total
            targets = [p for _, p in params]
        else:
            support = [to_device(example.whole()) for example in task.support]
            start = None if first_order else {**dict(model.named_parameters()),
                                              **{n: b.clone() for n, b in model.named_buffers()}}
            adapted, inner = adapt(model, support, adaptation, weights=start, create_graph=not first_order)
            stats.inner_first, stats.inner_last = (inner[0], inner[-1]) if inner else (math.nan, math.nan)
            # The model's own buffers, so the base model's batch-norm statistics follow the query batches.
            # (and its frozen parameters, e.g. a fixed front end, as they are)
            weights = {**dict(model.named_parameters()), **{name: adapted[name] for name, _ in params},
                       **dict(model.named_buffers())}
            query_mel, options = model_inputs(mel)
            loss = model.loss(run(model, weights, query_mel, glob, **options), va).total
            targets = [p for _, p in params] if not first_order else [adapted[name] for name, _ in params]
    if not torch.isfinite(loss):
        raise NonFiniteLoss(f"the query loss of listener {task.listener}'s task is {float(loss.detach())}")
    grads = torch.autograd.grad(loss, targets, allow_unused=True)
    stats.loss = float(loss.detach())
    return [torch.zeros_like(p) if g is None else g.detach() for g, (_, p) in zip(grads, params)], stats


def tasks_gradient(model: nn.Module, tasks: list[Task], indices: list[int], adaptation: AdaptConfig | None, *,
                   first_order: bool, device: torch.device, seed_of) -> tuple[list[torch.Tensor], StepStats]:
    """Summed gradients of ``tasks[i]`` for ``i`` in ``indices``; ``seed_of(i)`` seeds each task's dropout."""
    total = [torch.zeros_like(p) for _, p in trainable(model)]
    stats = StepStats()
    for index in indices:
        torch.manual_seed(seed_of(index))
        grads, task_stats = task_gradient(model, tasks[index], adaptation, first_order=first_order, device=device)
        for accumulated, grad in zip(total, grads):
            accumulated += grad
        stats.add(task_stats)
    return total, stats
