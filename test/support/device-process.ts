/**
 * `esm-device` as a real child process (the checkout's bin/esm-device.js, or an installed
 * binary), with its stdout and stderr collected for assertions and failure messages.
 */
import { type ChildProcess, spawn } from 'node:child_process';

export interface DeviceProcess {
  child: ChildProcess;
  /** Everything the process printed so far (JSON log lines and errors). */
  output(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/**
 * Start `esm-device ARGS`. `bin` is an installed executable; by default the checkout's
 * `bin/esm-device.js` runs under this Node.
 */
export function startDeviceProcess(
  args: readonly string[],
  options: { bin?: string; env?: Record<string, string | undefined> } = {},
): DeviceProcess {
  const [command, argv] = options.bin
    ? [options.bin, [...args]]
    : [process.execPath, ['bin/esm-device.js', ...args]];
  const child = spawn(command, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { child, output: () => output, exited };
}
