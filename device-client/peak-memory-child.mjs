// Child process of measurePeakMemory (device-client/metrics.ts): loads onnxruntime and one
// ONNX model, runs it, and prints its resident-memory numbers as one JSON line. Plain
// JavaScript, so it starts without the TypeScript loader (a fresh process per model is the
// point: its resident high-water mark belongs to this one model).
//   node peak-memory-child.mjs MODEL.onnx '[1,3,224,224]' RUNS THREADS PROVIDER
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';

const [file, shapeJson, runsText, threadsText, provider] = process.argv.slice(2);
const shape = JSON.parse(shapeJson);
const bytes = readFileSync(file);
const size = shape.reduce((a, b) => a * b, 1);
const data = new Float32Array(size);
for (let i = 0; i < size; i++) data[i] = ((i * 2654435761) % 1000) / 1000;
// Everything before the session (Node, onnxruntime's library, the model file's bytes, the
// input) is the baseline; the model's own memory is what the session and its runs add.
const before = process.memoryUsage().rss;
const session = await ort.InferenceSession.create(bytes, {
  intraOpNumThreads: Number(threadsText),
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  executionMode: 'sequential',
  executionProviders: [provider],
  logSeverityLevel: 3,
});
const afterSession = process.memoryUsage().rss;
const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, shape) };
for (let i = 0; i < Number(runsText); i++) await session.run(feeds);
// The high-water mark of this process's resident set. On Linux, /proc/self/status VmHWM:
// getrusage's ru_maxrss is no good there, because it keeps the high-water mark of the memory
// the process had before exec, i.e. the parent's resident set at fork (a daemon of 130 MB
// made every model look 130 MB). Elsewhere ru_maxrss (Node reports it in KiB).
function highWaterMark() {
  try {
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kib !== undefined) return Number(kib) * 1024;
  } catch {}
  return process.resourceUsage().maxRSS * 1024;
}
const peak = highWaterMark();
process.stdout.write(`${JSON.stringify({ before, afterSession, peak })}\n`);
