"""onnxruntime session options shared by the exported model's runtime (pdmer.export.runtime) and the musicnn
encoder (pdmer.model.musicnn), which run side by side in a stream."""

from __future__ import annotations


def session_options(threads: int | None):
    """onnxruntime options for a process that shares its cores (the stream's hops, the global encoder): ``threads``
    intra-op threads (None: onnxruntime's default), no spin-waiting between calls (spinning keeps cores busy for ~ms
    after each call, which the other work then lacks), and onnxruntime's own warnings silenced (e.g. no GPU for
    CUDA): they become our messages."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options
