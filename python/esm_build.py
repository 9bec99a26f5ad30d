"""A minimal PEP 517 / PEP 660 build backend for this pure-Python package, standard library only.

pip builds in an isolated environment and would download ``setuptools`` (and ``wheel``) for a
setuptools backend; this one needs nothing, so ``pip install ./python`` works offline. It
reads name, version and dependencies from pyproject.toml (a small parser for the lines this
file uses: Python 3.8+ has no tomllib before 3.11).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "esm_predictor"


def _project():
    text = open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8").read()
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]

    def field(name):
        m = re.search(rf'^{name}\s*=\s*"([^"]*)"', project, re.M)
        return m.group(1) if m else ""

    deps = re.search(r"^dependencies\s*=\s*\[([^\]]*)\]", project, re.M)
    extras = {}
    if "[project.optional-dependencies]" in text:
        block = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
        for m in re.finditer(r"^(\w+)\s*=\s*\[([^\]]*)\]", block, re.M):
            extras[m.group(1)] = re.findall(r'"([^"]+)"', m.group(2))
    return {
        "name": field("name"),
        "version": field("version"),
        "summary": field("description"),
        "requires_python": field("requires-python"),
        "dependencies": re.findall(r'"([^"]+)"', deps.group(1)) if deps else [],
        "extras": extras,
    }


def _metadata(p):
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p['name']}",
        f"Version: {p['version']}",
        f"Summary: {p['summary']}",
    ]
    if p["requires_python"]:
        lines.append(f"Requires-Python: {p['requires_python']}")
    lines += [f"Requires-Dist: {d}" for d in p["dependencies"]]
    for extra, deps in p["extras"].items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {d}; extra == "{extra}"' for d in deps]
    readme = os.path.join(HERE, "README.md")
    body = open(readme, encoding="utf-8").read() if os.path.exists(readme) else ""
    return ("\n".join(lines) + "\nDescription-Content-Type: text/markdown\n\n" + body).encode()


def _dist_name(p):
    return p["name"].replace("-", "_")


def _digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _write_wheel(wheel_directory, files):
    p = _project()
    dist_info = f"{_dist_name(p)}-{p['version']}.dist-info"
    files = dict(files)
    files[f"{dist_info}/METADATA"] = _metadata(p)
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: esm_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{dist_info}/top_level.txt"] = f"{PACKAGE}\n".encode()
    record = [f"{name},{_digest(data)},{len(data)}" for name, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    name = f"{_dist_name(p)}-{p['version']}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            z.writestr(path, data)
    return name


def _package_files():
    out = {}
    root = os.path.join(HERE, PACKAGE)
    for dirpath, _, names in os.walk(root):
        for n in sorted(names):
            if n.endswith(".py"):
                full = os.path.join(dirpath, n)
                out[os.path.relpath(full, HERE).replace(os.sep, "/")] = open(full, "rb").read()
    return out


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, _package_files())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # PEP 660: a .pth file that puts this directory on sys.path.
    return _write_wheel(wheel_directory, {f"_{PACKAGE}_editable.pth": (HERE + "\n").encode()})


def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    base = f"{_dist_name(p)}-{p['version']}"
    name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as tar:
        for rel in ["pyproject.toml", "esm_build.py", "README.md", *_package_files()]:
            full = os.path.join(HERE, rel)
            if os.path.exists(full):
                tar.add(full, arcname=f"{base}/{rel}")
        info = _metadata(p)
        member = tarfile.TarInfo(f"{base}/PKG-INFO")
        member.size = len(info)
        tar.addfile(member, io.BytesIO(info))
    return name
