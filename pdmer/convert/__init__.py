"""One-off converters of third-party checkpoints into pdmer's formats (no TensorFlow needed)."""
