// The Node half of the onnxruntime stand-in (onnxruntime/__init__.py beside this file): one
// onnxruntime-node session per process, one JSON request per stdin line, one JSON reply per
// stdout line, tensors as base64 of their little-endian bytes.
import { createInterface } from 'node:readline';
import ort from 'onnxruntime-node';

const ARRAYS = {
  int64: BigInt64Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
  bool: Uint8Array,
};

const metadata = (list) => list.map(({ name, type, shape }) => ({ name, type, shape }));

function tensorOf({ type, dims, data }) {
  const bytes = Buffer.from(data, 'base64');
  const Typed = ARRAYS[type];
  // A copy, so the typed array starts on an aligned offset.
  const values = new Typed(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  );
  return new ort.Tensor(type, values, dims);
}

let session;
async function handle(request) {
  if (request.op === 'load') {
    session = await ort.InferenceSession.create(request.path, {
      intraOpNumThreads: request.threads,
      interOpNumThreads: 1,
    });
    return { inputs: metadata(session.inputMetadata), outputs: metadata(session.outputMetadata) };
  }
  const feeds = Object.fromEntries(
    Object.entries(request.feeds).map(([name, t]) => [name, tensorOf(t)]),
  );
  const results = await session.run(feeds, request.names);
  const outputs = request.names.map((name) => {
    const t = results[name];
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    return { type: t.type, dims: t.dims, data: bytes.toString('base64') };
  });
  return { outputs };
}

for await (const line of createInterface({ input: process.stdin })) {
  const reply = await handle(JSON.parse(line)).catch((error) => ({ error: String(error) }));
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
