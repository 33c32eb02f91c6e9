"""ONNX plumbing shared by the heads' exports: the optional extra, the exporter call with
dynamic axes, the metadata properties, the check and the atomic write.

Why the dynamo exporter (``torch.onnx.export(..., dynamo=True)``, which needs onnxscript):
it is the default and the maintained path of torch 2.14 (the TorchScript exporter,
``dynamo=False``, is deprecated with ``torch.jit``), and it keeps H and W symbolic through
the model's pad-to-stride arithmetic instead of freezing the traced sizes.

The metadata is flat string properties (``metadata_props``), so any runtime reads it without
JSON: numbers as Python's shortest round-trip ``repr``, lists as JSON.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aedetect.errors import ExportError
from aedetect.util.fsutil import atomic_path
from aedetect.version import __version__

ONNX_EXTRA = 'pip install "aedetect[onnx]"'

log = logging.getLogger("aedetect")


def require_onnx() -> Any:
    """The ``onnx`` module, or one line naming the extra that brings it (and onnxscript)."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter's translator)
    except ImportError as e:
        raise ExportError(f"ONNX export needs the onnx extra ({e.name} is not installed): {ONNX_EXTRA}") from None
    return onnx


def check_new_file(path: str | Path, overwrite: bool = False) -> Path:
    """``path`` as a Path; an existing file is refused unless ``overwrite``."""
    p = Path(path)
    if p.is_dir():
        raise ExportError(f"{p}: is a folder; --out names the file to write")
    if p.exists() and not overwrite:
        raise ExportError(f"{p}: file exists; choose a new --out (or pass --overwrite)")
    return p


def export_copy(model: nn.Module) -> nn.Module:
    """A float32, CPU, contiguous-layout copy in eval mode: the loaded model stays as it was
    (channels_last on the device it scores on), and the graph carries plain NCHW weights."""
    m = copy.deepcopy(model).float().cpu().eval()
    return m.to(memory_format=torch.contiguous_format)


def metadata_text(value: Any) -> str:
    """One metadata property value: strings as they are, numbers round-trip, the rest JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)


def base_metadata(task: str, cfg_data: Any, size: tuple[int, int] | None) -> dict[str, Any]:
    """What every exported graph records: version, task and the preprocessing a caller does
    before the graph (decode, channels, resize to ``size``, divide by the type's maximum)."""
    return {
        "aedetect_version": __version__,
        "task": task,
        "input": "float32 (N, C, H, W), values in [0, 1]: integer pixels divided by 255 (8-bit) or 65535 (16-bit)",
        "channels": cfg_data.channels,
        "size": list(size) if size else "any",
        "resize": cfg_data.resize,
        "model_scaling": cfg_data.scaling,
    }


def export_onnx(graph: nn.Module, example: Tensor, path: str | Path, *, output_names: list[str],
                dynamic_axes: dict[int, str], metadata: dict[str, Any], overwrite: bool = False,
                opset: int | None = None) -> Path:
    """Export ``graph(example)`` to ``path`` with input ``images``, the named outputs, the
    ``dynamic_axes`` of the input (axis -> name; the outputs follow) and ``metadata`` as
    metadata properties; the file is checked by ``onnx.checker`` before it is renamed into place."""
    onnx = require_onnx()
    p = check_new_file(path, overwrite)
    dims = {axis: torch.export.Dim(name, min=1) for axis, name in dynamic_axes.items()}
    graph = graph.eval()
    try:
        with torch.no_grad():
            program = torch.onnx.export(graph, (example,), dynamo=True, input_names=["images"],
                                        output_names=output_names, dynamic_shapes=({**dims},),
                                        opset_version=opset, optimize=True, verbose=False)
    except Exception as e:  # the exporter raises many kinds; the cause is in the chain
        raise ExportError(f"{p}: torch.onnx.export failed ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e
    proto = program.model_proto  # type: ignore[union-attr]
    del proto.metadata_props[:]
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, metadata_text(v)
    proto.producer_name = "aedetect"
    proto.producer_version = __version__
    onnx.checker.check_model(proto, full_check=True)
    with atomic_path(p) as tmp:
        onnx.save_model(proto, tmp)
    log.info("wrote %s (%.1f kB)", p, p.stat().st_size / 1e3)
    return p


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The metadata properties of an ONNX file (without loading its weights)."""
    onnx = require_onnx()
    proto = onnx.load_model(str(path), load_external_data=False)
    return {e.key: e.value for e in proto.metadata_props}
