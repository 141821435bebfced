"""Per-listener profiles from one annotated song (built in a later issue)."""
