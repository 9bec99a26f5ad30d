/**
 * Every file a command reads, given wrong: a missing file, a directory, an empty file. Each is
 * answered with one line naming the flag and what to do, exit code 2, and no stack trace.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';

const esm = join(import.meta.dirname, '..', '..', 'bin', 'esm.js');
const dir = mkdtempSync(join(tmpdir(), 'esm-bad-input-'));
const missing = join(dir, 'missing.jsonl');
const directory = join(dir, 'a-directory');
const empty = join(dir, 'empty.jsonl');
const blank = join(dir, 'blank.jsonl');
mkdirSync(directory);
writeFileSync(empty, '');
writeFileSync(blank, '\n  \n\n');

function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [esm, ...args], { encoding: 'utf8', input });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user error: exit 2, one `error:` line, no stack trace, nothing on stdout. */
function expectUserError(r: ReturnType<typeof cli>, message: RegExp): void {
  expect(r.stderr).toMatch(message);
  expect(r.stderr).toMatch(/^error: /);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stdout).toBe('');
  expect(r.code).toBe(2);
}

describe('a bad --in file', () => {
  let predictor: string;

  beforeAll(() => {
    const rng = createRng(2);
    const rows = Array.from({ length: 40 }, () => {
      const subnet = randomSubnet(mobilenetv3, rng);
      return {
        arch: mobilenetv3.toNative(subnet),
        latency_ms: syntheticLatencyMs(mobilenetv3, subnet),
      };
    });
    const data = join(dir, 'data.jsonl');
    writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n'));
    predictor = join(dir, 'predictor');
    const fit = cli([
      'fit',
      '--space',
      'mobilenetv3',
      '--data',
      data,
      '--model',
      'ridge',
      '--out',
      predictor,
    ]);
    expect(fit.code).toBe(0);
  });

  for (const command of ['encode', 'predict'] as const) {
    const base = () =>
      command === 'encode'
        ? ['encode', '--space', 'mobilenetv3']
        : ['predict', '--predictor', predictor];

    it(`esm ${command}: a missing file names --in and says it does not exist`, () => {
      expectUserError(
        cli([...base(), '--in', missing]),
        /^error: --in: .*missing\.jsonl does not exist; check the path$/m,
      );
    });

    it(`esm ${command}: a directory names --in and asks for a file`, () => {
      expectUserError(
        cli([...base(), '--in', directory]),
        /^error: --in: .*a-directory is a directory; give a file$/m,
      );
    });

    it(`esm ${command}: an empty or blank file is an error, not silent success`, () => {
      for (const file of [empty, blank]) {
        expectUserError(
          cli([...base(), '--in', file]),
          /^error: --in: .* holds no architectures; expected one JSON arch .*`esm sample --space mobilenetv3/m,
        );
      }
    });

    it(`esm ${command}: empty standard input is an error too`, () => {
      expectUserError(cli(base(), ''), /^error: --in: standard input holds no architectures/m);
    });
  }
});

describe('the other file flags', () => {
  it('esm fit --data: a directory and a missing file say why they cannot be read', () => {
    expectUserError(
      cli(['fit', '--space', 'mobilenetv3', '--data', directory]),
      /^error: --data: cannot read .*a-directory \(it is a directory, not a file\)$/m,
    );
    expectUserError(
      cli(['fit', '--space', 'mobilenetv3', '--data', missing]),
      /^error: --data: cannot read .*missing\.jsonl \(no such file or directory\)$/m,
    );
  });

  it('esm sample --exclude / --from and a spec file name the flag and the reason', () => {
    expectUserError(
      cli(['sample', '--space', 'mobilenetv3', '--n', '2', '--exclude', directory]),
      /^error: --exclude: .*a-directory is a directory; give a file$/m,
    );
    expectUserError(
      cli(['sample', '--space', 'mobilenetv3', '--n', '2', '--from', missing]),
      /^error: --from: .*missing\.jsonl does not exist; check the path$/m,
    );
    expectUserError(
      cli(['spaces', '--space', join(dir, 'nope.json')]),
      /^error: --space: spec file .*nope\.json does not exist; check the path$/m,
    );
  });

  it('esm measure --arch @FILE and --in name the flag and the reason', () => {
    expectUserError(
      cli(['measure', '--space', 'mobilenetv3', '--arch', `@${directory}`]),
      /^error: --arch: .*a-directory is a directory; give a file$/m,
    );
    expectUserError(
      cli(['measure', '--space', 'mobilenetv3', '--in', empty]),
      /^error: --in: .* holds no architectures/m,
    );
  });

  it('esm report: a directory that is not a run names DIR', () => {
    expectUserError(
      cli(['report', directory]),
      /^error: DIR: .*a-directory is not a run directory/m,
    );
  });
});

describe('a dataset of another space', () => {
  it('names the built-in spaces whose archs the line holds, and none where no space fits', () => {
    // Prepare: FBNet lines (HELP's op indices) read as MobileNetV3, and an arch of no space.
    const ops = (k: number) => Array.from({ length: 22 }, (_, i) => (i + k) % 9);
    const fbnetLines = join(dir, 'fbnet.jsonl');
    writeFileSync(
      fbnetLines,
      [1, 2, 3].map((k) => JSON.stringify({ arch: { ops: ops(k) }, latency_ms: k })).join('\n'),
    );
    const nowhere = join(dir, 'nowhere.jsonl');
    writeFileSync(nowhere, JSON.stringify({ arch: { layers: [1, 2] }, latency_ms: 1 }));
    // Act
    const asMobilenet = cli(['fit', '--space', 'mobilenetv3', '--data', fbnetLines]);
    const asNothing = cli(['fit', '--space', 'mobilenetv3', '--data', nowhere]);
    // Assess
    expectUserError(
      asMobilenet,
      /^error: .*fbnet\.jsonl:1: field arch\.ks: .*; the arch fits space fbnet \(also fbnet-imagenet\), not mobilenetv3: read the file with --space fbnet$/m,
    );
    expectUserError(asNothing, /^error: .*nowhere\.jsonl:1: field arch\./m);
    expect(asNothing.stderr).not.toMatch(/fits space/);
    // Archs given to a command of another space (encode, predict) say the same.
    expectUserError(
      cli(['encode', '--space', 'mobilenetv3', '--in', fbnetLines]),
      /^error: .*fbnet\.jsonl:1: .*; the arch fits space fbnet \(also fbnet-imagenet\), not mobilenetv3$/m,
    );
  });
});
