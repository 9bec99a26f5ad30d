/**
 * What a device is, reported with every result so that a latency dataset says where it was
 * measured: CPU, cores, accelerator, OS and runtime versions.
 */
import { execFileSync } from 'node:child_process';
import { arch, cpus, release, type } from 'node:os';
import type { DeviceFacts } from '../core/schemas/protocol.ts';
import { type ExecutionProvider, runtimeInfo } from './measure.ts';

let accelerator: string | null | undefined;

/** The first NVIDIA GPU's name from `nvidia-smi`, or null where there is none. Cached. */
export function acceleratorName(): string | null {
  if (accelerator !== undefined) return accelerator;
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    });
    accelerator = out.trim().split('\n')[0]?.trim() || null;
  } catch {
    accelerator = null;
  }
  return accelerator;
}

export interface DeviceFactsOptions {
  /** @default 'cpu' */
  executionProvider?: ExecutionProvider;
}

export function deviceFacts(thing: string, options: DeviceFactsOptions = {}): DeviceFacts {
  const { executionProvider = 'cpu' } = options;
  const list = cpus();
  return {
    thing,
    cpu: list[0]?.model.trim() || arch(),
    cores: Math.max(1, list.length),
    accelerator: acceleratorName(),
    os: `${type()} ${release()} ${arch()}`,
    node: process.version,
    onnxruntime: runtimeInfo().version,
    executionProvider,
  };
}
