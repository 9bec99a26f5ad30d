"""Test vectors written by the TypeScript side (test/python/python.test.ts sets ESM_TEST_VECTORS)."""

import json
import os
import unittest

PATH = os.environ.get("ESM_TEST_VECTORS")


def load():
    if not PATH:
        raise unittest.SkipTest(
            "ESM_TEST_VECTORS is not set: run `npx vitest run test/python/python.test.ts`, "
            "which writes the vectors from the TypeScript side and runs these tests"
        )
    with open(PATH, encoding="utf-8") as f:
        return json.load(f)
