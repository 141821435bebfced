"""Live audio in, personalized valence/arousal out over OSC (built in a later issue)."""
