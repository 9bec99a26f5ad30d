/**
 * The first hour of a new user: `esm` and `esm-device` installed from the packed tarball into a
 * fresh prefix work outside the checkout, and `npx esm` inside it prints no npm warning.
 * The install resolves dependencies through npm's cache (`--prefer-offline`), which `npm ci`
 * has just filled, so it needs the registry only for what the cache lacks.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const repo = join(import.meta.dirname, '..', '..');
const { version } = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function sh(command: string, args: string[], cwd: string) {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 400_000 });
  return {
    code: r.status,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    all: `${r.stdout}${r.stderr}`,
  };
}

describe('npm install -g of the packed tarball', () => {
  const dir = mkdtempSync(join(tmpdir(), 'esm-install-'));
  const prefix = join(dir, 'prefix');
  const elsewhere = mkdtempSync(join(tmpdir(), 'esm-elsewhere-'));
  const bin = (name: string) => join(prefix, 'bin', name);

  beforeAll(() => {
    const pack = sh(npm, ['pack', '--pack-destination', dir], repo);
    expect(pack.code, pack.all).toBe(0);
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBe(`esm-platform-${version}.tgz`);
    const install = sh(
      npm,
      [
        'install',
        '--global',
        '--prefix',
        prefix,
        '--ignore-scripts',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        join(dir, tarball as string),
      ],
      elsewhere,
    );
    expect(install.code, install.all).toBe(0);
  }, 420_000);

  it('runs `esm spaces` from another directory, with nothing on stderr', () => {
    const r = sh(bin('esm'), ['spaces'], elsewhere);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const space of ['mobilenetv3', 'resnet50', 'densenet']) expect(r.stdout).toContain(space);
  });

  it('answers --version with the package version', () => {
    const r = sh(bin('esm'), ['--version'], elsewhere);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`esm ${version} (node ${process.version})`);
  });

  it('installs esm-device too', () => {
    const r = sh(bin('esm-device'), ['--help'], elsewhere);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: esm-device/);
  });
});

describe('npx esm inside the checkout', () => {
  it('prints no npm warning (the project .npmrc holds only settings npm knows)', () => {
    const r = sh('npx', ['esm', 'spaces'], repo);
    expect(r.code).toBe(0);
    expect(r.all).not.toMatch(/npm warn/i);
    expect(r.stdout).toContain('mobilenetv3');
  });
});
