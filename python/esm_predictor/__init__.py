"""ESM predictors from Python: arch dicts in, latency out (see python/README.md)."""

from .rows import ArchError, Layout, arch_row, arch_rows

__version__ = "0.1.0"


def __getattr__(name):
    # Predictor and the OFA adapter import numpy/onnxruntime only when asked for, so the
    # pure-Python rows work without them.
    if name in ("Predictor", "predict"):
        from . import predictor

        return getattr(predictor, name)
    if name == "OFAEfficiencyPredictor":
        from .ofa import OFAEfficiencyPredictor

        return OFAEfficiencyPredictor
    raise AttributeError(name)


__all__ = ["ArchError", "Layout", "arch_row", "arch_rows", "Predictor", "predict", "OFAEfficiencyPredictor"]
