"""The sequence model after the global encoder as ONNX, and its runtime (built in a later issue)."""
