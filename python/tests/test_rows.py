"""Arch dicts -> rows in pure Python, against the rows the TypeScript side computed."""

import copy
import unittest

from esm_predictor.rows import ArchError, Layout, arch_row, arch_rows

from . import vectors


class RowsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = vectors.load()

    def test_rows_equal_typescript_rows_for_every_space(self):
        checked = 0
        for space in self.data["spaces"]:
            layout = Layout(space["layout"])
            is_spec = space["spec"] is not None
            for case in space["cases"]:
                self.assertEqual(arch_row(case["arch"], layout, is_spec), case["row"], space["space"])
                checked += 1
        self.assertGreater(checked, 0)

    def test_ofa_spellings_of_a_mobilenetv3_arch_give_the_same_row(self):
        space = next(s for s in self.data["spaces"] if s["space"] == "mobilenetv3")
        layout = Layout(space["layout"])
        case = space["cases"][0]
        arch = copy.deepcopy(case["arch"])
        r = arch.pop("r")
        for variant in ({**arch, "r": [r], "wid": None}, {**arch, "image_size": r}):
            self.assertEqual(arch_row(variant, layout), case["row"])

    def test_an_invalid_arch_names_the_field_typescript_names(self):
        checked = 0
        for space in self.data["spaces"]:
            layout = Layout(space["layout"])
            for case in space["invalid"]:
                with self.assertRaises(ArchError) as raised:
                    arch_row(case["arch"], layout, space["spec"] is not None)
                self.assertEqual(raised.exception.field, case["field"], space["space"])
                checked += 1
        self.assertGreater(checked, 0)

    def test_a_batch_error_names_the_arch_index(self):
        space = next(s for s in self.data["spaces"] if s["space"] == "mobilenetv3")
        layout = Layout(space["layout"])
        bad = copy.deepcopy(space["cases"][0]["arch"])
        bad["unknown"] = 1
        with self.assertRaises(ArchError) as raised:
            arch_rows([space["cases"][0]["arch"], bad], layout)
        self.assertEqual(raised.exception.field, "archs[1].unknown")

    def test_a_layout_of_another_format_is_refused(self):
        with self.assertRaises(ValueError):
            Layout({"format": "something-else", "version": 1, "space": "x", "entries": []})


if __name__ == "__main__":
    unittest.main()
