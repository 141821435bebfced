"""Where pdmer keeps what it computes once (song features, rendered MIDI) and the keys it files them under.

Its own small module, not part of ``pdmer.data.features``: the MIDI renderer needs the folder too, and the features
module (torch, the encoders, ``pdmer.audio``) sits above the dataset loaders that render MIDI, so the renderer
importing it closed an import cycle (pdmer.audio -> pdmer.data -> vgmidi -> render -> features -> pdmer.audio).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def stable_hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    if os.environ.get("PDMER_CACHE"):
        return Path(os.environ["PDMER_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("pdmer")) / "features"
