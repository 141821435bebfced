"""Per-listener profiles: one-shot adaptation from one annotated song, stored per listener (``profile``: create,
load, list, delete, export, import; ``store``: where and how they are written; ``curve``: the listener's CSV).

    import pdmer.profiles
    pdmer.profiles.create("alice", "song.mp3", "alice.csv", base="model.safetensors")
    pdmer.profiles.load("alice").onnx, [p.name for p in pdmer.profiles.list()]

Names load on first use, so that ``pdmer --help`` does not import torch."""

_NAMES = {"create": "create", "load": "load", "list": "list_profiles", "delete": "delete",
          "export": "export_profile", "import_": "import_profile", "Profile": "Profile"}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name == "ProfileError":
        from pdmer.profiles.store import ProfileError

        return ProfileError
    if name not in _NAMES:
        raise AttributeError(f"module 'pdmer.profiles' has no attribute {name!r}")
    from pdmer.profiles import profile

    return getattr(profile, _NAMES[name])
