"""Move the embedded default model onto grid patches (pdmer 0.2's musicnn features), weights unchanged.

The default was trained on "spread" musicnn features (3 patches spread over each trailing 30 s window, refreshed
every 2.5 s). pdmer 0.2 computes global vectors from 3 s patches tiled back from each window's end, every 3 s, so
that a file or stream encodes each patch once (pdmer.model.patches). This rewrites the checkpoint's record of its
inputs to the new features, keeping every other field, and notes the change; its model card's numbers were then
measured again on the new features. The next default is trained on them (issue 23).

    python recipes/default-model/grid_features.py pdmer/assets/default/model.safetensors
    pdmer export pdmer/assets/default/model.safetensors -o pdmer/assets/default/model.onnx
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pdmer.data.features import GlobalWindows, inputs_metadata
from pdmer.model.checkpoint import load_model, read_metadata, save_model
from pdmer.model.encoders import load_global_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    args = parser.parse_args()
    metadata = read_metadata(args.checkpoint)
    trained_on = {key: metadata[key] for key in ("global_encoder", "global_windows")}
    kept = dict(metadata)  # save_model writes format, architecture and config itself
    kept.update(inputs_metadata(load_global_encoder("musicnn"), GlobalWindows(delay=0)))  # as it was then
    kept["trained_on_inputs"] = json.dumps(trained_on)  # what the weights were trained with, for the record
    save_model(load_model(args.checkpoint), args.checkpoint, metadata=kept)
    print(f"{args.checkpoint}: inputs now {kept['global_encoder']}, {kept['global_windows']}")


if __name__ == "__main__":
    main()
