"""Predictor directories from Python: native arch dicts in, latencies out, with onnxruntime
running ``predictor-arch.onnx`` (the encoding is inside the graph), no Node.js needed."""

from __future__ import annotations

import json
import os
from typing import Any, List, Mapping, Optional, Sequence, Union

from .rows import Layout, arch_rows

ARCH_ONNX = "predictor-arch.onnx"
ARCH_JSON = "predictor-arch.json"
PREDICTOR_JSON = "predictor.json"


def _import_onnxruntime():
    # Recent onnxruntime collects telemetry on Linux and macOS (a device id and a queue of usage
    # events under ~/.cache/Microsoft/DeveloperTools/.onnxruntime, uploaded to Microsoft). Off,
    # as in the esm CLI, unless the caller set the variable (ORT_DISABLE_TELEMETRY=0: on); the
    # runtime reads it when it creates its environment, so before the import.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    try:
        import onnxruntime  # noqa: PLC0415 (optional dependency, imported when first needed)
    except ImportError as e:
        raise ImportError(
            "esm_predictor.Predictor needs onnxruntime: pip install onnxruntime "
            "(or pip install './python[onnx]'); arch rows alone need only esm_predictor.rows"
        ) from e
    return onnxruntime


class Predictor:
    """A predictor directory written by ``esm fit --out`` or ``esm run``.

    ``Predictor(dir).predict(archs)`` returns one latency (ms) per OFA-style arch dict;
    with ``return_std=True`` also the standard deviation where the predictor has one (an
    output named ``*_std*``), else ``None``.
    """

    def __init__(self, directory: str, threads: int = 1, providers: Optional[Sequence[str]] = None) -> None:
        self.directory = directory
        layout_path = os.path.join(directory, ARCH_JSON)
        if not os.path.exists(layout_path):
            raise FileNotFoundError(
                f"{layout_path} is missing; the directory must be written by esm fit --out or esm run "
                "of a version with the arch-in graph (refit older predictors)"
            )
        self.layout = Layout.from_file(layout_path)
        with open(os.path.join(directory, PREDICTOR_JSON), encoding="utf-8") as f:
            self.info = json.load(f)
        # A user spec space stores its spec in predictor.json; its archs use the spec format.
        self.is_spec = self.info.get("space", {}).get("spec") is not None
        np = _numpy()
        ort = _import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            os.path.join(directory, ARCH_ONNX),
            sess_options=options,
            providers=list(providers) if providers else ["CPUExecutionProvider"],
        )
        self._np = np
        names = [o.name for o in self._session.get_outputs()]
        self._output = "latency_ms" if "latency_ms" in names else names[0]
        self._std = next((n for n in names if "std" in n), None)
        # What the model predicts (esm fit --metric): latency_ms unless predictor.json says otherwise.
        self.metric = self.info.get("metric", "latency_ms")

    @property
    def space(self) -> str:
        return self.layout.space

    def rows(self, archs: Sequence[Mapping[str, Any]]):
        """The int64 arch rows of ``archs`` (``esm encode --arch-tensor`` prints the same)."""
        return self._np.asarray(arch_rows(archs, self.layout, self.is_spec), dtype=self._np.int64).reshape(
            len(archs), self.layout.length
        )

    def predict_rows(self, rows, return_std: bool = False):
        """Latencies of arch rows (int64 ``[n, length]``); NaN for a row the space does not allow."""
        x = self._np.ascontiguousarray(rows, dtype=self._np.int64)
        wanted = [self._output] + ([self._std] if return_std and self._std else [])
        out = self._session.run(wanted, {self.layout.input: x})
        mean = out[0].reshape(-1).astype(self._np.float64)
        if not return_std:
            return mean
        std = out[1].reshape(-1).astype(self._np.float64) if len(out) > 1 else None
        return mean, std

    def predict(self, archs: Sequence[Mapping[str, Any]], return_std: bool = False):
        """One prediction per arch dict (numpy float64 array); see ``predict_rows``."""
        if isinstance(archs, Mapping):
            raise TypeError("predict takes a list of arch dicts; use predict_one for a single arch")
        return self.predict_rows(self.rows(archs), return_std=return_std)

    def predict_one(self, arch: Mapping[str, Any]) -> float:
        """The prediction for one arch dict as a float (an evolution search's inner loop)."""
        return float(self.predict([arch])[0])


def _numpy():
    import numpy  # noqa: PLC0415

    return numpy


PredictorLike = Union[Predictor, str]


def as_predictor(p: PredictorLike) -> Predictor:
    return p if isinstance(p, Predictor) else Predictor(p)


def predict(directory: str, archs: Sequence[Mapping[str, Any]]) -> List[float]:
    """Convenience: load a predictor directory and predict ``archs`` (list of floats)."""
    return [float(v) for v in Predictor(directory).predict(archs)]


__all__ = ["Predictor", "predict", "as_predictor", "ARCH_ONNX", "ARCH_JSON"]
