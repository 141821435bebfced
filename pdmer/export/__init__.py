"""The model after its global encoder as one ONNX graph (``graph``), run with onnxruntime (``runtime``), and whole
songs predicted on it (``predict``). Names load on first use, so that ``pdmer --help`` (which registers this
package's commands) does not import torch."""

_NAMES = {"ExportError": "graph", "export_onnx": "graph", "to_onnx": "graph", "OnnxModel": "runtime",
          "OnnxOutput": "runtime"}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'pdmer.export' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"pdmer.export.{_NAMES[name]}"), name)
