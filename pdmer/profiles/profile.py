"""Profiles: one-shot adaptation on one song and the listener's curve for it, stored, listed, loaded, moved.

``create`` runs the routine meta-training's inner loop uses (:func:`pdmer.model.adapt.adapt`), with the adaptation
the base model was meta-trained with (its checkpoint records it; ``steps``/``lr``/``params`` override). It stores the
adapted weights (safetensors, loadable with :func:`pdmer.model.checkpoint.load_model`), their ONNX export (what
the stream and ``pdmer predict --profile`` run) and ``profile.json``: the name, when, the base model's weight hash,
the adaptation, the support audio's SHA-256 and the fit on the support song before and after.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pdmer import __version__
from pdmer.profiles import store
from pdmer.profiles.store import DEFAULT, FILES, ProfileError

FORMAT = "pdmer.profile/1"


@dataclass(frozen=True)
class Profile:
    name: str
    info: dict  # profile.json
    folder: Path | None  # None: the default profile, i.e. the base model itself

    @property
    def weights(self) -> Path | None:
        return self.folder / "weights.safetensors" if self.folder else None

    @property
    def onnx(self) -> Path | None:
        return self.folder / "model.onnx" if self.folder else None

    @property
    def base_hash(self) -> str | None:
        return self.info.get("base", {}).get("weights_sha256")

    def check_base(self, base_hash: str, base_name: str = "the base model") -> None:
        """Refuse a profile adapted from other weights than ``base_hash``, saying how to recreate it."""
        if self.folder is None or self.base_hash == base_hash:
            return
        support = self.info.get("support", {})
        raise ProfileError(
            f"profile {self.name!r} was made for base model {self.base_hash[:12]} "
            f"({self.info.get('base', {}).get('source', '?')}), not for {base_name} ({base_hash[:12]}): recreate it "
            f"with pdmer profile create {self.name} --audio {support.get('audio', 'SONG')} "
            f"--curve {self.info.get('curve', {}).get('file', 'CURVE.csv')} --base MODEL --force")


def create(name: str, audio: str | Path, curve: str | Path, *, base: str | Path, steps: int | None = None,
           lr: float | None = None, params: str | None = None, scale: str = "[-1,1]", force: bool = False, root: Path | None = None,
           progress=None) -> Profile:
    """Adapt ``base`` (a model checkpoint) to one listener from one song and their curve for it; store it."""
    import torch

    from pdmer.data.features import recorded_inputs
    from pdmer.export.graph import export_onnx
    from pdmer.export.song import read_song, waveform_features
    from pdmer.fileio import file_sha256
    from pdmer.model.adapt import AdaptConfig, adapt
    from pdmer.model.checkpoint import deployment_metadata, load_model, save_model, weights_hash
    from pdmer.model.registry import architecture_of
    from pdmer.profiles.curve import support_curve

    store.check_name(name, creating=True)
    root = root or store.profiles_root()
    if not force and store.profile_dir(name, root) is not None:
        raise ProfileError(f"profile {name!r} exists; pass --force to replace it, or choose another name")
    waveform, rate = read_song(audio)  # the cheap checks first: audio and curve, before any model work
    seconds = len(waveform) / rate
    labels = support_curve(curve, seconds, scale=scale)
    model = load_model(base)
    context = deployment_metadata(base)
    encoder, windows = recorded_inputs(context, model.config.global_dim, source=str(base))
    mel, global_feat = waveform_features(encoder, windows, waveform, rate, progress=progress)
    rows = slice(labels.first_step, labels.first_step + len(labels.va))
    support = (mel[rows], global_feat[rows], torch.from_numpy(labels.va))

    config = AdaptConfig(**json.loads(context["adaptation"])) if "adaptation" in context else AdaptConfig()
    overrides = {"steps": steps, "lr": lr, "params": params}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    with torch.enable_grad():
        weights, losses = adapt(model, [support], config)
    weights = {key: value.detach() for key, value in weights.items()}
    adapted = copy.deepcopy(model)
    adapted.load_state_dict(weights)
    base_hash = weights_hash(model)
    info = {
        "format": FORMAT, "name": name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pdmer_version": __version__,
        "base": {"source": str(Path(base).resolve()), "weights_sha256": base_hash, "architecture": architecture_of(model),
                 "preset": model.config.name},
        "adaptation": dataclasses.asdict(config),
        "support": {"audio": Path(audio).name, "sha256": file_sha256(audio), "seconds": round(seconds, 3),
                    "first_step": labels.first_step, "steps": len(labels.va)},
        "curve": {"file": Path(curve).name, "sha256": file_sha256(curve), "points": labels.points, "scale": scale},
        "losses": {"before": losses[0] if losses else None, "per_step": losses},
        "fit": {"before": support_fit(model, None, support), "after": support_fit(model, weights, support)},
        "weights_sha256": weights_hash(adapted),
    }
    with store.staging(name, root) as folder:
        profile_context = {**context, "profile": name, "base_model_sha256": base_hash}
        save_model(adapted, folder / "weights.safetensors", metadata=profile_context)
        export_onnx(model, folder / "model.onnx", weights=weights, context={**context, "profile": name})
        (folder / "profile.json").write_text(json.dumps(info, indent=1) + "\n")
        final = store.publish(name, folder, root, replace=force)  # without --force, not even one made meanwhile
    return Profile(name, info, final)


def support_fit(model, weights, support) -> dict[str, float]:
    """CCC / PCC / RMSE of the model (with ``weights``) on the support song, eval mode, sliding windows."""
    from pdmer.metrics import va_scores
    from pdmer.model.inference import predict_song

    mel, global_feat, va = support
    predicted = predict_song(model, mel, global_feat, weights=weights)
    return {key: round(float(value), 4) for key, value in va_scores(predicted[None], va[None]).items()}


def load(name: str, *, root: Path | None = None) -> Profile:
    """A stored profile; ``"default"`` is the base model (no files)."""
    if store.check_name(name) == DEFAULT:
        return Profile(DEFAULT, {"name": DEFAULT, "format": FORMAT}, None)
    folder = store.profile_dir(name, root)
    if folder is None:
        raise store.unknown(name, root)
    info = store.read_info(folder, name)
    if info.get("format") != FORMAT or info.get("name") != name:
        raise ProfileError(f"profile {name!r} is not stored in format {FORMAT}; recreate it with pdmer profile "
                           f"create {name} --force, or delete it")
    return Profile(name, info, folder)


def list_profiles(*, root: Path | None = None) -> list[Profile]:
    """Every stored profile, by name (``default`` not included: it is always there)."""
    return [load(name, root=root) for name in store.names(root)]


def delete(name: str, *, root: Path | None = None) -> None:
    store.delete(name, root)


def export_profile(name: str, out: str | Path, *, root: Path | None = None) -> Path:
    """Copy a profile's files into the folder ``out`` (created; must be empty or absent)."""
    profile = load(name, root=root)
    if profile.folder is None:
        raise ProfileError(f"the {DEFAULT!r} profile is the base model itself: there is nothing to export")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ProfileError(f"{out} is not empty; export into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    for file in FILES:
        shutil.copy2(profile.folder / file, out / file)
    return out


def import_profile(folder: str | Path, *, name: str | None = None, force: bool = False,
                   root: Path | None = None) -> Profile:
    """Store the profile exported into ``folder`` (under ``name``, default its own), after checking its files."""
    from pdmer.export.runtime import OnnxModel
    from pdmer.model.checkpoint import load_model, weights_hash

    folder = Path(folder)
    missing = [file for file in FILES if not (folder / file).is_file()]
    if missing:
        raise ProfileError(f"{folder} is not an exported profile (missing {', '.join(missing)})")
    info = store.read_info(folder)
    if info.get("format") != FORMAT:
        raise ProfileError(f"{folder / 'profile.json'} is not a pdmer profile (format {info.get('format')!r})")
    name = store.check_name(name or info.get("name", ""), creating=True)
    root = root or store.profiles_root()
    if not force and store.profile_dir(name, root) is not None:
        raise ProfileError(f"profile {name!r} exists; pass --force to replace it, or --name to import as another")
    if weights_hash(load_model(folder / "weights.safetensors")) != info.get("weights_sha256"):
        raise ProfileError(f"{folder / 'weights.safetensors'} does not match its profile.json; export it again")
    onnx = OnnxModel(folder / "model.onnx", device="cpu")
    if onnx.metadata.get("weights_sha256") != info.get("weights_sha256"):
        raise ProfileError(f"{folder / 'model.onnx'} does not match its profile.json; export it again")
    with store.staging(name, root) as staged:
        for file in FILES:
            shutil.copy2(folder / file, staged / file)
        (staged / "profile.json").write_text(json.dumps({**info, "name": name}, indent=1) + "\n")
        final = store.publish(name, staged, root, replace=force)
    return Profile(name, {**info, "name": name}, final)
