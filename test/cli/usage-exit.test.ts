/**
 * Usage errors that commander finds (a bad flag value, an unknown option or command, a
 * missing value) exit 2 like every other user error of `esm`, and like every configuration
 * error of `esm-device`, whose systemd unit restarts on any other failure
 * (`RestartPreventExitStatus=2`). Help and --version still exit 0.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const bin = (name: string) => join(import.meta.dirname, '..', '..', 'bin', name);

function run(name: 'esm.js' | 'esm-device.js', args: string[]) {
  const r = spawnSync(process.execPath, [bin(name), ...args], {
    encoding: 'utf8',
    // No broker or thing from the environment: the device's own checks stay out of the way.
    env: { ...process.env, ESM_BROKER: undefined, ESM_THING: undefined, ESM_CONFIG: undefined },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('esm: usage errors exit 2', () => {
  const cases: [string, string[], RegExp][] = [
    [
      'a bad flag value',
      ['run', '--space', 'mobilenetv3', '--n-init', 'abc'],
      /^error: option '--n-init <n>' argument 'abc' is invalid/,
    ],
    ['an unknown option', ['spaces', '--bogus'], /^error: unknown option '--bogus'/],
    ['an unknown command', ['nosuch'], /^error: unknown command 'nosuch'/],
    ['a missing required option', ['fit'], /^error: required option '--space/],
  ];
  for (const [what, args, message] of cases) {
    it(`for ${what}, with one error line and nothing on stdout`, () => {
      const r = run('esm.js', args);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(2);
    });
  }

  it('help and --version still exit 0', () => {
    const version = run('esm.js', ['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^esm \d+\.\d+\.\d+/);
    const help = run('esm.js', ['fit', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: esm fit/);
  });
});

describe('esm-device: usage errors are configuration errors (exit 2, not restarted)', () => {
  const cases: [string, string[], RegExp][] = [
    ['an unknown option', ['--bogus'], /^error: unknown option '--bogus'/],
    [
      'a flag without its value',
      ['--broker'],
      /^error: option '--broker <value>' argument missing/,
    ],
    [
      'an unknown option of register',
      ['register', '--thing', 'a', '--bogus'],
      /^error: unknown option '--bogus'/,
    ],
  ];
  for (const [what, args, message] of cases) {
    it(`for ${what}`, () => {
      const r = run('esm-device.js', args);
      expect(r.stderr).toMatch(message);
      expect(r.code).toBe(2);
    });
  }

  it('a bad setting exits 2 as before, and help exits 0', () => {
    const bad = run('esm-device.js', ['--broker', 'http://x', '--thing', 'a']);
    expect(bad.stderr).toMatch(/esm-device: .*broker/i);
    expect(bad.code).toBe(2);
    const help = run('esm-device.js', ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: esm-device/);
  });
});
