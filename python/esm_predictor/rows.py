"""Native architecture dicts -> arch rows, the int64 input of ``predictor-arch.onnx``.

Plain Python (no numpy, no onnxruntime), so it runs and is tested anywhere. The row layout
comes from the predictor directory (``predictor-arch.json``); this module only knows how
each space's native dict names its fields (OFA's format for the OFA spaces):

* ``mobilenetv3``: ``{"ks": [20], "e": [20], "d": [5], "r": R}``; OFA's ``"r": [R]``,
  ``"image_size": R`` and ``"wid": None`` are accepted too;
* ``resnet50``: ``{"d": [5], "e": [18], "w": [6], "r": R}`` (``image_size`` too);
* ``densenet``: ``{"d": [4], "g": [34], "b": [34], "k": [34], "r": R}``;
* ``fbnet`` and ``fbnet-imagenet``: ``{"ops": [22]}``, op indices 0..8 into HW-NAS-Bench's
  ``PRIMITIVES`` (8 = ``skip``) or the op names;
* ``nasbench201``: ``{"arch_str": "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|"}``, the
  benchmark's own string;
* a user spec space: ``{"d": [...], "blocks": [[{feature: value}]], "w": [...], "r": R}``.

The TypeScript side (``esm encode --arch-tensor``) writes the same rows; the tests check
both against shared vectors.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

FORMAT = "esm-arch-row"
VERSION = 1


class ArchError(ValueError):
    """An architecture that is not a member of the space; ``field`` names what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Layout:
    """The arch row layout of one space, as ``predictor-arch.json`` stores it."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(
                f"not an arch row layout (format {data.get('format')!r} v{data.get('version')!r}); "
                f"expected {FORMAT} v{VERSION}, written by esm fit --out"
            )
        self.space: str = data["space"]
        self.entries: List[Dict[str, Any]] = list(data["entries"])
        self.length: int = len(self.entries)
        self.labels: List[str] = [e["label"] for e in self.entries]
        self.input: str = data.get("input", "arch")
        self.outputs: List[str] = list(data.get("outputs", ["latency_ms"]))
        self._index = {label: i for i, label in enumerate(self.labels)}
        self.units = sum(1 for e in self.entries if e["kind"] == "depth")
        self.slots = [0] * self.units
        for e in self.entries:
            if e["kind"] == "block":
                self.slots[e["unit"]] = max(self.slots[e["unit"]], e["slot"] + 1)
        self.block_choices: List[str] = []
        self.unit_choices: List[str] = []
        for e in self.entries:
            if e["kind"] == "block" and e["choice"] not in self.block_choices:
                self.block_choices.append(e["choice"])
            if e["kind"] == "unit" and e["choice"] not in self.unit_choices:
                self.unit_choices.append(e["choice"])
        self.globals = [e["choice"] for e in self.entries if e["kind"] == "global"]

    @classmethod
    def from_file(cls, path: str) -> "Layout":
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    def entry(self, label: str) -> Dict[str, Any]:
        return self.entries[self._index[label]]

    def row(self, values: Mapping[str, Any], sources: Optional[Mapping[str, str]] = None) -> List[int]:
        """The row of one architecture given as ``{label: value}``; inactive slots may be absent."""
        sources = sources or {}
        depth = {e["unit"]: values.get(e["label"]) for e in self.entries if e["kind"] == "depth"}
        out: List[int] = []
        for e in self.entries:
            label = e["label"]
            if e["kind"] == "block":
                d = depth.get(e["unit"])
                valid_depth = isinstance(d, (int, float)) and not isinstance(d, bool) and float(d).is_integer()
                if not valid_depth or e["slot"] >= int(d):
                    # Inactive (or the depth is invalid, which its own entry reports).
                    out.append(e["codes"][0])
                    continue
            out.append(_code(e, values.get(label), sources.get(label, label)))
        return out


def _code(entry: Mapping[str, Any], value: Any, field: str) -> int:
    for allowed, code in zip(entry["values"], entry["codes"]):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == allowed:
            return code
    allowed_text = ", ".join(_fmt(v) for v in entry["values"])
    raise ArchError(field, f"got {value!r}, allowed values are {allowed_text}")


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _number(v: Any) -> Any:
    """numpy scalars and the like as plain Python numbers (OFA samples hold numpy ints)."""
    item = getattr(v, "item", None)
    return item() if callable(item) else v


def _list(arch: Mapping[str, Any], key: str, length: int) -> List[Any]:
    value = arch.get(key)
    if not isinstance(value, (list, tuple)) and not hasattr(value, "tolist"):
        raise ArchError(key, f"expected a list of {length} numbers, got {value!r}")
    value = list(value.tolist() if hasattr(value, "tolist") else value)
    if len(value) != length:
        raise ArchError(key, f"expected a list of {length} numbers, got {len(value)}")
    return [_number(v) for v in value]


def _resolution(arch: Mapping[str, Any], fallback: Optional[int]) -> Tuple[Any, str]:
    present = [k for k in ("r", "image_size") if arch.get(k) is not None]
    if len(present) > 1:
        raise ArchError("image_size", "give the resolution once, as r")
    key = present[0] if present else "r"
    value = arch.get(key, fallback)
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if value is None:
        raise ArchError("r", "the resolution is required")
    return _number(value), key


def _check_keys(arch: Mapping[str, Any], allowed: Sequence[str], space: str) -> None:
    for key in arch:
        if key not in allowed:
            raise ArchError(key, f"unknown field; a {space} arch has {', '.join(allowed)}")


Values = Tuple[Dict[str, Any], Dict[str, str]]


def _per_position(fields: Mapping[str, str], extra_keys: Sequence[str] = ()) -> Callable[[Mapping[str, Any], Layout], Values]:
    """Spaces whose native dict has one flat list per block choice (OFA order) and ``d``."""

    def convert(arch: Mapping[str, Any], layout: Layout) -> Values:
        keys = [*fields.values(), "d", "r", "image_size", *extra_keys]
        _check_keys(arch, keys, layout.space)
        positions = sum(layout.slots)
        lists = {name: _list(arch, key, positions) for name, key in fields.items()}
        d = _list(arch, "d", layout.units)
        values: Dict[str, Any] = {}
        sources: Dict[str, str] = {}
        offset = 0
        for u in range(layout.units):
            values[f"u{u}.depth"] = d[u]
            sources[f"u{u}.depth"] = f"d[{u}]"
            for s in range(layout.slots[u]):
                for name, key in fields.items():
                    label = f"u{u}.b{s}.{name}"
                    values[label] = lists[name][offset + s]
                    sources[label] = f"{key}[{offset + s}]"
            offset += layout.slots[u]
        values["resolution"], sources["resolution"] = _resolution(arch, 224)
        return values, sources

    return convert


_mobilenetv3_fields = _per_position({"kernel": "ks", "expand": "e"}, extra_keys=("wid",))
_densenet = _per_position({"growth": "g", "bnSize": "b", "kernel": "k"})


def _mobilenetv3(arch: Mapping[str, Any], layout: Layout) -> Values:
    # OFA's ArchManager writes "wid": None; this space is width 1.0 only.
    if arch.get("wid") is not None:
        raise ArchError("wid", f"got {arch['wid']!r}; this space is OFA w1.0, use None or leave it out")
    return _mobilenetv3_fields(arch, layout)


# OFA ResNet50: stem widths per width-multiplier index, make_divisible(64 * wm, 8) and
# make_divisible(that // 2, 8) for wm in (0.65, 0.8, 1.0) (core/spaces/resnet50.ts).
_RESNET_STEM_OUT = (40, 48, 64)
_RESNET_STEM_MID = (24, 24, 32)
_RESNET_WIDTHS = (0.65, 0.8, 1.0)
_RESNET_BASE_DEPTHS = (2, 2, 4, 2)


def _resnet50(arch: Mapping[str, Any], layout: Layout) -> Values:
    _check_keys(arch, ("d", "e", "w", "r", "image_size"), "resnet50")
    d = _list(arch, "d", 5)
    e = _list(arch, "e", sum(layout.slots))
    w = _list(arch, "w", 6)
    for i, v in enumerate(w):
        if v not in (0, 1, 2):
            raise ArchError(f"w[{i}]", f"got {v!r}, allowed values are 0, 1, 2")
    if d[0] not in (0, 1, 2):
        raise ArchError("d[0]", f"got {d[0]!r}, allowed values are 0, 1, 2")
    values: Dict[str, Any] = {
        "stemSkip": 0 if d[0] == 2 else 1,
        "stemMid": _RESNET_STEM_MID[w[0]],
        "stemOut": _RESNET_STEM_OUT[w[1]],
    }
    sources = {"stemSkip": "d[0]", "stemMid": "w[0]", "stemOut": "w[1]"}
    offset = 0
    for u in range(4):
        delta = d[u + 1]
        if delta not in (0, 1, 2):
            raise ArchError(f"d[{u + 1}]", f"got {delta!r}, allowed values are 0, 1, 2")
        values[f"u{u}.depth"] = _RESNET_BASE_DEPTHS[u] + delta
        sources[f"u{u}.depth"] = f"d[{u + 1}]"
        values[f"u{u}.width"] = _RESNET_WIDTHS[w[u + 2]]
        sources[f"u{u}.width"] = f"w[{u + 2}]"
        for s in range(layout.slots[u]):
            values[f"u{u}.b{s}.expand"] = e[offset + s]
            sources[f"u{u}.b{s}.expand"] = f"e[{offset + s}]"
        offset += layout.slots[u]
    values["resolution"], sources["resolution"] = _resolution(arch, 224)
    return values, sources


def _spec(arch: Mapping[str, Any], layout: Layout) -> Values:
    """User spec spaces: ``{"d": [...], "blocks": [[{feature: value}]], "w": [...], "r": R}``."""
    elastic = "width" in layout.unit_choices
    _check_keys(arch, ("d", "blocks", "w", "r") if elastic else ("d", "blocks", "r"), layout.space)
    d = _list(arch, "d", layout.units)
    blocks = arch.get("blocks")
    if not isinstance(blocks, (list, tuple)) or len(blocks) != layout.units:
        raise ArchError("blocks", f"expected a list of {layout.units} lists of blocks, one per unit")
    w = _list(arch, "w", layout.units) if elastic else None
    values: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    for u in range(layout.units):
        values[f"u{u}.depth"] = d[u]
        sources[f"u{u}.depth"] = f"d[{u}]"
        if w is not None:
            values[f"u{u}.width"] = w[u]
            sources[f"u{u}.width"] = f"w[{u}]"
        _code(layout.entry(f"u{u}.depth"), d[u], f"d[{u}]")
        unit_blocks = blocks[u]
        if not isinstance(unit_blocks, (list, tuple)) or len(unit_blocks) != d[u]:
            raise ArchError(f"blocks[{u}]", f"expected d[{u}] = {d[u]!r} blocks")
        for s, block in enumerate(unit_blocks):
            if not isinstance(block, Mapping):
                raise ArchError(f"blocks[{u}][{s}]", "expected an object of block features")
            for key in block:
                if key not in layout.block_choices:
                    raise ArchError(f"blocks[{u}][{s}].{key}", f"not a block feature; use {', '.join(layout.block_choices)}")
            # A layer-wise unit's skip ({"skip": 1}): its other features mean nothing and
            # take their first values, as the TypeScript parser normalises them.
            skip = _number(block.get("skip", 0)) if "skip" in layout.block_choices else 0
            if skip != 0:
                _code(layout.entry(f"u{u}.b{s}.skip"), skip, f"blocks[{u}][{s}].skip")
            for name in layout.block_choices:
                label = f"u{u}.b{s}.{name}"
                allowed = layout.entry(label)["values"]
                if skip != 0:
                    values[label] = skip if name == "skip" else allowed[0]
                elif name == "skip":
                    values[label] = 0
                else:
                    # A feature with a single allowed value may be left out, as in the spec format.
                    values[label] = _number(block.get(name, allowed[0] if len(allowed) == 1 else None))
                sources[label] = f"blocks[{u}][{s}].{name}"
    values["resolution"], sources["resolution"] = _resolution(arch, None)
    return values, sources


# HW-NAS-Bench's PRIMITIVES (core/spaces/fbnet.ts): the index is the native value.
_FBNET_OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
_FBNET_SKIP = len(_FBNET_OPS) - 1


def _fbnet(arch: Mapping[str, Any], layout: Layout) -> Values:
    """FBNet: a layer-wise space; a slot is ``{op: 0..7, skip: 0}`` or the skip ``{op: 0, skip: 1}``."""
    for key in arch:
        if key != "ops":
            raise ArchError(key, f"unknown field; a {layout.space} arch has only ops")
    layers = sum(layout.slots)
    ops = arch.get("ops")
    if hasattr(ops, "tolist"):
        ops = ops.tolist()
    if not isinstance(ops, (list, tuple)) or len(ops) != layers:
        raise ArchError("ops", f"expected an array of {layers} op indices (0..{_FBNET_SKIP}), got {ops!r}"[:160])
    values: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    at = 0
    for u in range(layout.units):
        values[f"u{u}.depth"] = layout.slots[u]
        for s in range(layout.slots[u]):
            op = _fbnet_op(f"ops[{at}]", _number(ops[at]))
            skip = op == _FBNET_SKIP
            values[f"u{u}.b{s}.op"] = 0 if skip else op
            values[f"u{u}.b{s}.skip"] = 1 if skip else 0
            sources[f"u{u}.b{s}.op"] = sources[f"u{u}.b{s}.skip"] = f"ops[{at}]"
            at += 1
    values["resolution"] = _fixed_resolution(layout)
    return values, sources


def _fixed_resolution(layout: Layout) -> Any:
    """The one resolution of a space whose arch does not carry it (FBNet, NAS-Bench-201)."""
    return layout.entry("resolution")["values"][0]


def _fbnet_op(field: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _FBNET_SKIP:
        return value
    if isinstance(value, str) and value in _FBNET_OPS:
        return _FBNET_OPS.index(value)
    names = ", ".join(f"{i} {n}" for i, n in enumerate(_FBNET_OPS))
    raise ArchError(field, f"got {value!r}, allowed values are 0..{_FBNET_SKIP} ({names})")


# NAS-Bench-201 (core/spaces/nasbench201.ts): op names, the index is the normalised op; the
# non-layers none and skip_connect are skip kinds 1 and 2, their op the first value (2).
_NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
_NB201_EXAMPLE = '"|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"'


def _nasbench201(arch: Mapping[str, Any], layout: Layout) -> Values:
    for key in arch:
        if key != "arch_str":
            raise ArchError(key, "unknown field; a nasbench201 arch has only arch_str")
    text = arch.get("arch_str")
    if not isinstance(text, str):
        raise ArchError("arch_str", f"expected the NAS-Bench-201 string, e.g. {_NB201_EXAMPLE}, got {text!r}")
    groups = text.split("+")
    if len(groups) != 3:
        raise ArchError("arch_str", f"expected 3 node groups joined by \"+\" (nodes 1, 2, 3), got {len(groups)}; e.g. {_NB201_EXAMPLE}")
    values: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    for g, group in enumerate(groups):
        node = g + 1
        field = f"arch_str node {node}"
        if not (group.startswith("|") and group.endswith("|")):
            raise ArchError(field, f'"{group}" must start and end with "|"; e.g. {_NB201_EXAMPLE}')
        edges = group[1:-1].split("|")
        if len(edges) != node:
            raise ArchError(field, f"expected {node} edge(s) (from nodes 0..{node - 1}), got {len(edges)} in \"{group}\"")
        values[f"u{g}.depth"] = layout.slots[g]
        for i, edge in enumerate(edges):
            name, _, source = edge.partition("~")
            edge_field = f"{field} edge {i}"
            if source != str(i):
                raise ArchError(edge_field, f'"{edge}" must come from node {i} ("op~{i}"), in order')
            if name not in _NB201_OPS:
                raise ArchError(edge_field, f'unknown op "{name}"; allowed ops are {", ".join(_NB201_OPS)}')
            op = _NB201_OPS.index(name)
            values[f"u{g}.b{i}.op"] = 2 if op < 2 else op
            values[f"u{g}.b{i}.skip"] = (1 if op == 0 else 2) if op < 2 else 0
            sources[f"u{g}.b{i}.op"] = sources[f"u{g}.b{i}.skip"] = edge_field
    values["resolution"] = _fixed_resolution(layout)
    return values, sources


_CONVERTERS: Dict[str, Callable[[Mapping[str, Any], Layout], Values]] = {
    "mobilenetv3": _mobilenetv3,
    "resnet50": _resnet50,
    "densenet": _densenet,
    "fbnet": _fbnet,
    "fbnet-imagenet": _fbnet,
    "nasbench201": _nasbench201,
}


def converter(space: str, is_spec: bool) -> Callable[[Mapping[str, Any], Layout], Values]:
    """The native-dict reader of a space; raises ``KeyError`` naming what exists."""
    if is_spec:
        return _spec
    if space not in _CONVERTERS:
        raise KeyError(
            f"no Python reader of {space} archs yet (known: {', '.join(_CONVERTERS)} and spec spaces); "
            "build the rows yourself (layout in predictor-arch.json) and call predict_rows"
        )
    return _CONVERTERS[space]


def arch_row(arch: Mapping[str, Any], layout: Layout, is_spec: bool = False) -> List[int]:
    """The arch row of one native architecture dict."""
    if not isinstance(arch, Mapping):
        raise ArchError("arch", f"expected a dict describing a {layout.space} architecture, got {type(arch).__name__}")
    values, sources = converter(layout.space, is_spec)(arch, layout)
    return layout.row(values, sources)


def arch_rows(archs: Sequence[Mapping[str, Any]], layout: Layout, is_spec: bool = False) -> List[List[int]]:
    """Arch rows of many architectures; errors name the arch's index and the field."""
    rows = []
    for i, arch in enumerate(archs):
        try:
            rows.append(arch_row(arch, layout, is_spec))
        except ArchError as e:
            raise ArchError(f"archs[{i}].{e.field}", str(e).split(": ", 1)[1]) from e
    return rows
