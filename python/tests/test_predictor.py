"""Predictor directories through onnxruntime: the latencies `esm predict` gave, from arch dicts.

Needs onnxruntime and numpy; skipped with the reason printed where they are not importable
(the development machine of this project has no PyPI, so onnxruntime cannot be installed
there)."""

import copy
import math
import random
import sys
import unittest

from . import vectors

try:
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401

    MISSING = None
except ImportError as e:  # pragma: no cover - depends on the machine
    MISSING = f"onnxruntime is not importable ({e}); pip install onnxruntime to run these tests"
    print(f"skipping esm_predictor onnxruntime tests: {MISSING}", file=sys.stderr)


@unittest.skipIf(MISSING is not None, MISSING or "")
class PredictorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = vectors.load()
        from esm_predictor import OFAEfficiencyPredictor, Predictor

        cls.Predictor = Predictor
        cls.OFA = OFAEfficiencyPredictor

    def test_predicts_what_esm_predict_printed(self):
        for case in self.data["predictors"]:
            p = self.Predictor(case["dir"])
            got = p.predict(case["archs"])
            self.assertEqual(len(got), len(case["expected"]))
            for g, e in zip(got, case["expected"]):
                self.assertLessEqual(abs(g - e) / e, 1e-5, case["dir"])
            self.assertAlmostEqual(p.predict_one(case["archs"][0]) / case["expected"][0], 1, places=5)

    def test_a_row_the_space_does_not_allow_predicts_nan(self):
        case = self.data["predictors"][0]
        p = self.Predictor(case["dir"])
        rows = p.rows(case["archs"][:2])
        rows[1, p.layout.length - 1] = 1  # resolution 1
        got = p.predict_rows(rows)
        self.assertTrue(math.isfinite(got[0]))
        self.assertTrue(math.isnan(got[1]))

    def test_ofa_evolution_finder_calls_work_unchanged(self):
        # The calls EvolutionFinder makes: get_efficiency on deep copies of mutated samples,
        # compared with a constraint.
        case = next(c for c in self.data["predictors"] if c["space"] == "mobilenetv3")
        efficiency = self.OFA(case["dir"])
        rng = random.Random(0)
        sample = copy.deepcopy(case["archs"][0])
        for _ in range(50):
            child = copy.deepcopy(sample)
            i = rng.randrange(20)
            child["ks"][i] = rng.choice([3, 5, 7])
            child["e"][i] = rng.choice([3, 4, 6])
            value = efficiency.get_efficiency(child)
            self.assertIsInstance(value, float)
            self.assertTrue(value > 0)
            if value <= efficiency.get_efficiency(sample) * 1.1:
                sample = child
        batch = efficiency.predict_efficiency(case["archs"][:5])
        self.assertEqual(len(batch), 5)


if __name__ == "__main__":
    unittest.main()
