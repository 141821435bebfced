"""Seconds per MAML outer step (and per DMER step) for a preset, on random inputs of the real shapes.

One outer step with the authors' settings: 16 tasks, each adapting on one 30 s clip (60 steps) for 16 first-order
SGD steps, then the query loss on 15 clips. On CPU that is slow, so --tasks measures fewer tasks and the outer
step is their time scaled to 16 (printed as such).

    python benchmarks/train_speed.py --preset small --threads 2
    python benchmarks/train_speed.py --preset paper --threads 2 --tasks 1
    python benchmarks/train_speed.py --preset paper --device cuda
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from pdmer.model.adapt import AdaptConfig
from pdmer.model.registry import build_model
from pdmer.train.data import Example, Task
from pdmer.train.steps import tasks_gradient

AUTHORS_TASKS = 16


def fake_task(global_dim: int, window: int, query: int) -> Task:
    mel = lambda: torch.randn(window, 51, 128)  # noqa: E731
    va = lambda *shape: torch.rand(*shape, window, 2) * 2 - 1  # noqa: E731
    support = Example("s", "L", mel(), torch.randn(window, global_dim), va())
    query_batch = (torch.randn(query, window, 51, 128), torch.randn(query, window, global_dim), va(query))
    return Task("L", [support], query_batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--model", default="dsaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=AUTHORS_TASKS, help="tasks to time (the step is scaled to 16)")
    parser.add_argument("--query", type=int, default=15)
    parser.add_argument("--inner-steps", type=int, default=16)
    parser.add_argument("--inner-params", default="all", choices=["all", "head"])
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    global_dim = 1024 if args.preset in ("paper", "authors") else 200
    model = build_model(args.model, args.preset, global_dim=global_dim).to(device)
    tasks = [fake_task(global_dim, args.window, args.query) for _ in range(args.tasks)]
    adaptation = AdaptConfig(steps=args.inner_steps, window=args.window, params=args.inner_params)

    def meta_step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        tasks_gradient(model, tasks, list(range(len(tasks))), adaptation, first_order=True, device=device,
                       seed_of=lambda i: i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    meta_step()  # warm-up (allocations, cuDNN plans)
    measured = min(meta_step() for _ in range(args.repeats))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'}"
    print(f"{args.model} preset {args.preset} on {args.device} ({where}, {args.threads} threads); "
          f"inner {args.inner_steps} steps ({args.inner_params}), query {args.query} clips of {args.window} steps")
    print(f"  {args.tasks} task(s): {measured:.2f} s, {measured / args.tasks:.2f} s per task")
    scaled = "" if args.tasks == AUTHORS_TASKS else f" (scaled from {args.tasks})"
    print(f"  outer step of {AUTHORS_TASKS} tasks: {measured / args.tasks * AUTHORS_TASKS:.1f} s{scaled}")


if __name__ == "__main__":
    main()
