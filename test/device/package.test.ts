/**
 * The slim device package: packed from this checkout (device-client/build.ts), installed with
 * `npm install -g` into a temporary prefix with `--offline` (every dependency comes from the
 * tarball), then run: `esm-device --help`, and a real job over the aedes broker.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultMessage, topics } from '../../core/schemas/protocol.ts';
import {
  dependencyClosure,
  isOtherPlatformBinary,
  packDevicePackage,
} from '../../device-client/build.ts';
import { type Broker, startBroker } from '../../local/mqtt-broker.ts';
import { startDeviceProcess } from '../support/device-process.ts';
import { field, recorder, tinyJob } from '../support/mqtt.ts';
import { telemetryOnOverrides } from '../support/telemetry-env.ts';

/** Bytes of every file under `dir`. */
function treeBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += treeBytes(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

describe('device package build helpers', () => {
  it('collects the transitive dependencies with Node resolution, nested copies included', () => {
    const lock = {
      packages: {
        'node_modules/a': { dependencies: { b: '^1', c: '^1' } },
        'node_modules/b': { dependencies: { c: '^2' } },
        'node_modules/b/node_modules/c': {},
        'node_modules/c': { optionalDependencies: { missing: '^1' } },
        'node_modules/unrelated': {},
      },
    };
    expect(dependencyClosure(lock, ['a'])).toEqual([
      'node_modules/a',
      'node_modules/b',
      'node_modules/b/node_modules/c',
      'node_modules/c',
    ]);
    expect(() => dependencyClosure(lock, ['nope'])).toThrow(/no nope/);
  });

  it('keeps only the target platform of onnxruntime-node', () => {
    const bin = ['node_modules', 'onnxruntime-node', 'bin', 'napi-v6'].join(sep);
    expect(isOtherPlatformBinary([bin, 'linux', 'x64'].join(sep), 'linux-arm64')).toBe(true);
    expect(isOtherPlatformBinary([bin, 'darwin'].join(sep), 'linux-arm64')).toBe(true);
    expect(isOtherPlatformBinary([bin, 'linux', 'arm64', 'x.so'].join(sep), 'linux-arm64')).toBe(
      false,
    );
    expect(isOtherPlatformBinary([bin, 'linux'].join(sep), 'linux-arm64')).toBe(false);
    expect(isOtherPlatformBinary(['node_modules', 'mqtt', 'bin', 'x'].join(sep), 'linux-x64')).toBe(
      false,
    );
  });
});

describe('esm-device package installed offline from its tarball', () => {
  let broker: Broker;
  let prefix: string;
  let bin: string;

  beforeAll(async () => {
    const work = mkdtempSync(join(tmpdir(), 'esm-device-package-'));
    const tarball = await packDevicePackage({ destination: work });
    prefix = join(work, 'prefix');
    execFileSync(
      'npm',
      ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', tarball],
      {
        cwd: work,
        encoding: 'utf8',
        // CPU-only: onnxruntime-node's own install would fetch CUDA binaries on linux x64.
        env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', npm_config_loglevel: 'error' },
      },
    );
    bin = join(prefix, 'bin', 'esm-device');
    broker = await startBroker();
  }, 300_000);

  afterAll(async () => {
    await broker?.close();
  });

  it('prints its help and holds only the daemon, mqtt and one platform of onnxruntime', () => {
    const help = execFileSync(bin, ['--help'], { encoding: 'utf8' });
    expect(help).toContain('Usage: esm-device');
    expect(help).toContain('--progress-interval');
    // The registration command is in the bundle too (its AWS SDK code inlined).
    expect(execFileSync(bin, ['register', '--help'], { encoding: 'utf8' })).toContain('--thing');

    const installed = join(prefix, 'lib', 'node_modules', 'esm-device');
    const modules = readdirSync(join(installed, 'node_modules'));
    expect(modules).toContain('mqtt');
    expect(modules).toContain('onnxruntime-node');
    for (const heavy of ['aws-cdk-lib', '@tensorflow', '@aws-sdk', 'aedes', 'tsx']) {
      expect(modules).not.toContain(heavy);
    }
    const napi = join(installed, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6');
    expect(readdirSync(napi)).toEqual([process.platform]);
    expect(readdirSync(join(napi, process.platform))).toEqual([process.arch]);
    // The checkout's install is about 1.1 GB; the device package must stay a small fraction.
    expect(treeBytes(prefix)).toBeLessThan(150 * 1024 * 1024);
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
    expect(Object.keys(manifest.dependencies)).toEqual(['mqtt', 'onnxruntime-node']);
    expect(existsSync(join(installed, 'esm-device.service'))).toBe(true);
  });

  it('measures a real job over MQTT', async () => {
    const thing = 'packaged-1';
    const platform = await recorder(broker.url, [topics.results(thing), topics.status(thing)]);
    // A TMPDIR of its own, with the suite's ORT_DISABLE_TELEMETRY and the CI markers unset: only
    // esm-device can keep onnxruntime's telemetry off (device-client/measure.ts), else
    // mat-debug-PID.log here.
    const ownTmp = mkdtempSync(join(tmpdir(), 'esm-device-tmp-'));
    const device = startDeviceProcess(
      ['--broker', broker.url, '--thing', thing, '--state-dir', 'none', '--progress-interval', '0'],
      { bin, env: { ...telemetryOnOverrides, TMPDIR: ownTmp } },
    );
    try {
      await platform.next((m) => field(m, 'state') === 'online', 30_000);
      const job = tinyJob('b-packaged', { samples: 2 });
      await platform.client.publishAsync(topics.jobs(thing), JSON.stringify(job), { qos: 1 });
      const reply = await platform.next((m) => m.topic === topics.results(thing), 60_000);
      const result = resultMessage.parse(reply.json);
      expect(result.samples.map((s) => s.id)).toEqual(['b-packaged-s0', 'b-packaged-s1']);
      expect(result.device.onnxruntime).toMatch(/^\d+\.\d+/);
      expect(device.output()).toContain('"stateDir":"memory only"');
      expect(readdirSync(ownTmp).filter((f) => f.startsWith('mat-debug-'))).toEqual([]);
    } finally {
      device.child.kill('SIGTERM');
      expect(await device.exited, device.output()).toBe(0);
      await platform.close();
    }
  });
});
