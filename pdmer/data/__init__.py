"""Datasets: V-A curves per listener (or averaged) at 2 Hz tied to songs' audio, and the features cached for them.

Loaders: :func:`load_deam` (official DEAM layout), :func:`load_pmemo` (PMEmo2019), :func:`load_vgmidi` (VGMIDI:
per-listener curves on MIDI), :func:`load_4q` and :func:`load_emopia` (song-level quadrants), :func:`load_plain`
(users' own data and the synthetic benchmark), :func:`load_dataset` (any of them, detected). All return a
:class:`CurveSet`; MIDI songs get audio from :func:`pdmer.data.render.with_rendered_audio`.
"""

from pdmer.data.curves import MEAN, STEP_SECONDS, Curve, CurveSet, DataWarning, Song
from pdmer.data.deam import load_deam, load_emomusic, with_audio
from pdmer.data.plain import load_plain, write_plain
from pdmer.data.pmemo import load_pmemo
from pdmer.data.quadrants import load_4q, load_emopia
from pdmer.data.vgmidi import load_vgmidi

__all__ = ["MEAN", "STEP_SECONDS", "Curve", "CurveSet", "DataWarning", "Song", "load_deam", "load_emomusic",
           "with_audio", "load_plain", "write_plain", "load_pmemo", "load_vgmidi", "load_4q", "load_emopia"]
