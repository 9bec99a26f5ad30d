"""The part of the ``onnxruntime`` Python API that esm_predictor uses, run by onnxruntime-node.

Test support only, for machines where the real package cannot be installed (this project's
have no PyPI). test/python/python.test.ts puts this folder on PYTHONPATH only when
``import onnxruntime`` fails, so the Python module's predictions go through a real ONNX Runtime
(the same C++ runtime, reached through its Node binding in a child process, server.mjs)
instead of being skipped. It is as strict as the real binding where esm_predictor could go
wrong: feeds must be numpy arrays of the input's element type and rank, names must exist,
options and providers must be what the real API takes. What it cannot show is that the real
binding behaves like this; the GPU device machine (docs, issue 11) runs the real one.
"""

import atexit
import base64
import json
import os
import subprocess

import numpy as np

_SERVER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "server.mjs")
_DTYPES = {"int64": np.int64, "int32": np.int32, "float32": np.float32, "float64": np.float64, "bool": np.bool_}
_PROVIDERS = ["CPUExecutionProvider"]

__version__ = "0.0.0+onnxruntime-node-bridge"


def get_available_providers():
    return list(_PROVIDERS)


class SessionOptions:
    def __init__(self):
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0


class NodeArg:
    def __init__(self, meta):
        self.name = meta["name"]
        self.type = f"tensor({meta['type']})"
        self.shape = meta["shape"]
        self._dtype = meta["type"]


class InferenceSession:
    def __init__(self, path_or_bytes, sess_options=None, providers=None, **kwargs):
        if kwargs:
            raise TypeError(f"InferenceSession() got unexpected keyword arguments {sorted(kwargs)}")
        if sess_options is not None and not isinstance(sess_options, SessionOptions):
            raise TypeError("sess_options must be an onnxruntime.SessionOptions")
        for p in providers or []:
            if p not in _PROVIDERS:
                raise ValueError(f"{p} is not an available provider; available: {_PROVIDERS}")
        path = os.fspath(path_or_bytes)
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        threads = sess_options.intra_op_num_threads if sess_options else 0
        if not isinstance(threads, int) or threads < 0:
            raise TypeError("intra_op_num_threads must be a non-negative int")
        node = os.environ.get("ESM_NODE", "node")
        self._proc = subprocess.Popen(
            [node, _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        atexit.register(self._close)
        meta = self._call({"op": "load", "path": path, "threads": threads})
        self._inputs = [NodeArg(m) for m in meta["inputs"]]
        self._outputs = [NodeArg(m) for m in meta["outputs"]]

    def get_inputs(self):
        return list(self._inputs)

    def get_outputs(self):
        return list(self._outputs)

    def run(self, output_names, input_feed, run_options=None):
        names = list(output_names) if output_names else [o.name for o in self._outputs]
        known = {o.name for o in self._outputs}
        for n in names:
            if n not in known:
                raise ValueError(f"Invalid output name: {n}")
        inputs = {i.name: i for i in self._inputs}
        if set(input_feed) != set(inputs):
            raise ValueError(f"feeds {sorted(input_feed)} do not match the model's inputs {sorted(inputs)}")
        feeds = {}
        for name, value in input_feed.items():
            arg = inputs[name]
            if not isinstance(value, np.ndarray):
                raise TypeError(f"input {name} must be a numpy array")
            if value.dtype != np.dtype(_DTYPES[arg._dtype]):
                raise ValueError(f"Unexpected input data type for {name}: {value.dtype}, expected {arg.type}")
            if value.ndim != len(arg.shape) or any(
                isinstance(d, int) and d != v for d, v in zip(arg.shape, value.shape)
            ):
                raise ValueError(f"Got invalid dimensions for input {name}: {value.shape}, expected {arg.shape}")
            data = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<"), copy=False)
            feeds[name] = {
                "type": arg._dtype,
                "dims": list(value.shape),
                "data": base64.b64encode(data.tobytes()).decode("ascii"),
            }
        reply = self._call({"op": "run", "names": names, "feeds": feeds})
        out = []
        for t in reply["outputs"]:
            dtype = np.dtype(_DTYPES[t["type"]]).newbyteorder("<")
            out.append(np.frombuffer(base64.b64decode(t["data"]), dtype=dtype).reshape(t["dims"]).copy())
        return out

    def _call(self, request):
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the onnxruntime-node bridge ({_SERVER}) exited: {self._proc.wait()}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def _close(self):
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
