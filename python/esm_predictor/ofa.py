"""OFA's efficiency-predictor interface over an ESM predictor.

Once-for-All's ``EvolutionFinder`` (ofa/nas/search_algorithm/evolution.py) calls
``efficiency_predictor.get_efficiency(sample)`` with each candidate arch dict and compares the
result with its constraint, the interface of ``ofa.nas.efficiency_predictor.BaseEfficiencyModel``.
``OFAEfficiencyPredictor`` implements it, so the finder runs on measured-device latencies
unchanged::

    from esm_predictor.ofa import OFAEfficiencyPredictor
    finder = EvolutionFinder(OFAEfficiencyPredictor("predictors/pi4"), accuracy_predictor)
    best_valids, best_info = finder.run_evolution_search(constraint=25.0)  # ms
"""

from __future__ import annotations

from typing import Any, List, Mapping, Sequence

from .predictor import PredictorLike, as_predictor


class OFAEfficiencyPredictor:
    """``get_efficiency(arch_dict) -> float`` (ms, or the predictor's metric)."""

    def __init__(self, predictor: PredictorLike) -> None:
        self.predictor = as_predictor(predictor)

    def get_efficiency(self, arch_dict: Mapping[str, Any]) -> float:
        return self.predictor.predict_one(arch_dict)

    def predict_efficiency(self, arch_dicts: Sequence[Mapping[str, Any]]) -> List[float]:
        """A whole population at once (one onnxruntime call)."""
        return [float(v) for v in self.predictor.predict(list(arch_dicts))]
