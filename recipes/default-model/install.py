"""Install a trained checkpoint as the embedded default model, with the profile adaptation chosen on validation.

    python recipes/default-model/install.py RUN/model.safetensors --params output --steps 10 --lr 0.1

Writes pdmer/assets/default/model.safetensors (the checkpoint's weights and record, its "adaptation" set to the
chosen setting: what `pdmer profile create` and `pdmer eval` adapt with by default) and its checked ONNX export
model.onnx, each atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from pdmer.export.graph import export_onnx
from pdmer.model.adapt import PARAMS, AdaptConfig
from pdmer.model.checkpoint import deployment_metadata, load_model, read_metadata, save_model

ASSETS = Path(__file__).resolve().parents[2] / "pdmer" / "assets" / "default"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--params", choices=PARAMS, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--out-dir", type=Path, default=ASSETS)
    args = parser.parse_args()
    metadata = read_metadata(args.checkpoint)
    recorded = json.loads(metadata.get("adaptation", "{}"))
    adaptation = dataclasses.replace(AdaptConfig(**recorded), params=args.params, steps=args.steps, lr=args.lr)
    metadata["adaptation"] = json.dumps(dataclasses.asdict(adaptation))
    if recorded:
        metadata["meta_trained_adaptation"] = json.dumps(recorded)  # the inner loop it was meta-trained with
    model = load_model(args.checkpoint)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    weights = save_model(model, args.out_dir / "model.safetensors", metadata=metadata)
    export_onnx(model, args.out_dir / "model.onnx", context=deployment_metadata(weights))
    print(f"installed {args.checkpoint} into {args.out_dir}: profiles adapt {dataclasses.asdict(adaptation)}")


if __name__ == "__main__":
    main()
