"""pdmer: personalized dynamic music emotion recognition (DSAML), streamed as valence/arousal over OSC.

Importing ``pdmer`` is cheap: torch loads only with ``pdmer.model`` and the commands that need it.
"""

__version__ = "0.1.0"
