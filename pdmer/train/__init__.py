"""Training: DMER on mean labels and the personalized meta-training (MAML with per-listener tasks).

Submodules: ``config`` (TOML settings), ``data`` (examples, batches, tasks), ``steps`` (MAML and plain gradients),
``distributed`` (torchrun), ``run`` (the loop, validation, checkpoints), ``command`` (``pdmer train``).
"""
