import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KEPT_MARK, removeAbandoned } from './temp-root.js';

describe('removeAbandoned (the test runs’ temporary directories)', () => {
  it('removes the directories of runs that are gone, and only those', () => {
    const parent = mkdtempSync(path.join(tmpdir(), 'abandoned-'));
    // A pid that just exited: its run is gone.
    const deadPid = spawnSync('true').pid;
    const make = (name: string, file = 'x') => {
      mkdirSync(path.join(parent, name));
      writeFileSync(path.join(parent, name, file), '');
    };
    make(`esm-test-${deadPid}-gone`);
    make(`esm-test-${process.pid}-live`);
    make(`esm-test-${deadPid}-kept`, KEPT_MARK);
    make('esm-test-Ab12cd'); // made before directories carried a pid
    make(`other-${deadPid}-x`);
    writeFileSync(path.join(parent, `esm-test-${deadPid}-file`), '');

    expect(removeAbandoned(parent)).toEqual([`esm-test-${deadPid}-gone`]);
    expect(existsSync(path.join(parent, `esm-test-${deadPid}-gone`))).toBe(false);
    for (const kept of [
      `esm-test-${process.pid}-live`,
      `esm-test-${deadPid}-kept`,
      'esm-test-Ab12cd',
      `other-${deadPid}-x`,
      `esm-test-${deadPid}-file`,
    ]) {
      expect(existsSync(path.join(parent, kept)), kept).toBe(true);
    }
  });
});
