"""``python -m pdmer.streamer`` is ``pdmer-stream``."""

from pdmer.streamer.cli import main

main(prog_name="pdmer-stream")
