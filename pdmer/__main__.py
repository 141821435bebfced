"""``python -m pdmer``: the pdmer command (torchrun needs a module: torchrun ... -m pdmer train ...)."""

from pdmer.cli import main

main()
