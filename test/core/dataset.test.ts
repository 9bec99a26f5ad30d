import { describe, expect, it } from 'vitest';
import { formatDatasetLine, parseDataset } from '../../core/dataset.ts';
import { DatasetFormatError } from '../../core/errors.ts';
import { createRng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet, subnetKey } from '../../core/spaces/subnet.ts';

const space = getSpace('mobilenetv3');
const arch = {
  ks: new Array(20).fill(3),
  e: new Array(20).fill(4),
  d: [2, 3, 4, 2, 2],
  r: 192,
};
const archJson = JSON.stringify(arch);
const csvQuote = (s: string) => `"${s.replaceAll('"', '""')}"`;

function errorOf(fn: () => unknown): DatasetFormatError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DatasetFormatError);
    return error as DatasetFormatError;
  }
  throw new Error('expected a DatasetFormatError');
}

describe('parseDataset', () => {
  it('reads JSONL rows with their subnet, line number and extra fields', () => {
    const text = `${JSON.stringify({ arch, latency_ms: 12.5, std_ms: 0.3, device: 'pi4' })}\n\n${JSON.stringify({ arch: { ...arch, r: 224 }, latency_ms: 20 })}\n`;
    const { rows, duplicates } = parseDataset(text, { space, file: 'data.jsonl' });
    expect(rows).toHaveLength(2);
    expect(rows[0]?.latencyMs).toBe(12.5);
    expect(rows[0]?.line).toBe(1);
    expect(rows[0]?.extra).toEqual({ std_ms: 0.3, device: 'pi4' });
    expect(rows[0]?.subnet.units.map((u) => u.blocks.length)).toEqual([2, 3, 4, 2, 2]);
    expect(rows[1]?.line).toBe(3);
    expect(rows[1]?.subnet.resolution).toBe(224);
    expect(duplicates).toEqual([]);
  });

  it('reads CSV with a quoted arch JSON column and numeric extra columns', () => {
    const text = `latency_ms,arch,device,runs\n12.5,${csvQuote(archJson)},rtx4090,50\r\n`;
    const { rows } = parseDataset(text, { space, file: 'data.csv' });
    expect(rows).toHaveLength(1);
    expect(rows[0]?.latencyMs).toBe(12.5);
    expect(rows[0]?.arch).toEqual(arch);
    expect(rows[0]?.extra).toEqual({ device: 'rtx4090', runs: 50 });
  });

  it('accepts a CSV with a byte-order mark and a line of its own space', () => {
    const text = `\uFEFFarch,latency_ms,space\n${csvQuote(archJson)},4,mobilenetv3\n`;
    const { rows } = parseDataset(text, { space, file: 'excel.csv' });
    expect(rows.map((r) => r.latencyMs)).toEqual([4]);
  });

  it('round-trips formatDatasetLine output', () => {
    const rng = createRng(3);
    const subnets = Array.from({ length: 20 }, () => randomSubnet(space, rng));
    const text = subnets
      .map((subnet, i) =>
        formatDatasetLine({ space, subnet, latencyMs: 10 + i, extra: { runs: 5 } }),
      )
      .join('\n');
    const { rows } = parseDataset(text, { space, file: 'x.jsonl', duplicates: 'keep' });
    expect(rows.map((r) => subnetKey(r.subnet))).toEqual(subnets.map(subnetKey));
    expect(rows.map((r) => r.latencyMs)).toEqual(subnets.map((_, i) => 10 + i));
    expect(rows[0]?.extra).toEqual({ runs: 5 });
    expect(() => formatDatasetLine({ space, subnet: subnets[0] as never, latencyMs: -1 })).toThrow(
      /latency_ms/,
    );
  });

  it('averages duplicates by default and reports them; keeps or rejects them on request', () => {
    // The second line differs only in an inactive block position: the same network.
    const inactive = { ...arch, ks: arch.ks.map((k, i) => (i === 3 ? 7 : k)) };
    const text = [
      JSON.stringify({ arch, latency_ms: 10 }),
      JSON.stringify({ arch: { ...arch, r: 224 }, latency_ms: 30 }),
      JSON.stringify({ arch: inactive, latency_ms: 14 }),
    ].join('\n');
    const averaged = parseDataset(text, { space, file: 'd.jsonl' });
    expect(averaged.rows.map((r) => [r.line, r.latencyMs])).toEqual([
      [1, 12],
      [2, 30],
    ]);
    expect(averaged.duplicates.map((d) => d.lines)).toEqual([[1, 3]]);
    expect(parseDataset(text, { space, file: 'd.jsonl', duplicates: 'keep' }).rows).toHaveLength(3);
    const error = errorOf(() =>
      parseDataset(text, { space, file: 'd.jsonl', duplicates: 'error' }),
    );
    expect(error.message).toMatch(/^d\.jsonl:3: repeats the architecture of line 1/);
  });

  describe('errors name file:line, the field and the fix', () => {
    const good = JSON.stringify({ arch, latency_ms: 3 });
    const cases: [string, string, string, RegExp][] = [
      [
        'bad JSON',
        `${good}\n{"arch": {`,
        'a.jsonl',
        /^a\.jsonl:2: not valid JSON .*each line must be one JSON object/,
      ],
      [
        'missing latency',
        `${good}\n${JSON.stringify({ arch })}`,
        'a.jsonl',
        /^a\.jsonl:2: field latency_ms: .*positive number/,
      ],
      [
        'negative latency',
        JSON.stringify({ arch, latency_ms: -2 }),
        'a.jsonl',
        /^a\.jsonl:1: field latency_ms: .*milliseconds/,
      ],
      [
        'string latency',
        JSON.stringify({ arch, latency_ms: '3' }),
        'a.jsonl',
        /^a\.jsonl:1: field latency_ms/,
      ],
      [
        'missing arch',
        JSON.stringify({ latency_ms: 2 }),
        'a.jsonl',
        /^a\.jsonl:1: field arch: .*native mobilenetv3 architecture/,
      ],
      [
        'arch with a wrong value',
        JSON.stringify({ arch: { ...arch, d: [2, 3, 5, 2, 2] }, latency_ms: 2 }),
        'a.jsonl',
        /^a\.jsonl:1: field arch\.d\[2\]: got 5, allowed values are 2, 3, 4/,
      ],
      [
        'arch with an unknown field',
        JSON.stringify({ arch: { ...arch, w: [1] }, latency_ms: 2 }),
        'a.jsonl',
        /^a\.jsonl:1: field arch\.w: unknown field/,
      ],
      ['an array line', '[1, 2]', 'a.jsonl', /^a\.jsonl:1: expected a JSON object/],
      [
        'CSV without latency column',
        `arch,ms\n${csvQuote(archJson)},3`,
        'b.csv',
        /^b\.csv:1: CSV header has no "latency_ms" column/,
      ],
      [
        'CSV with unquoted arch',
        `arch,latency_ms\n${archJson},3`,
        'b.csv',
        /^b\.csv:2: .*quote fields that contain commas or quotes/,
      ],
      [
        'CSV with bad arch JSON',
        `arch,latency_ms\n"{""ks"":",3`,
        'b.csv',
        /^b\.csv:2: field arch: not valid JSON/,
      ],
      [
        'CSV with unterminated quote',
        `arch,latency_ms\n"{""ks""`,
        'b.csv',
        /^b\.csv:2: unterminated quoted CSV field/,
      ],
      [
        'CSV with negative latency',
        `arch,latency_ms\n${csvQuote(archJson)},-1`,
        'b.csv',
        /^b\.csv:2: field latency_ms/,
      ],
      ['empty file', '\n\n', 'c.jsonl', /^c\.jsonl:1: the dataset is empty/],
      [
        'a line of another space',
        JSON.stringify({ arch, latency_ms: 2, space: 'resnet50' }),
        'a.jsonl',
        /^a\.jsonl:1: field space: .*"resnet50" but the dataset is read as "mobilenetv3"; pass --space resnet50/,
      ],
    ];
    for (const [what, text, file, pattern] of cases) {
      it(what, () => {
        const error = errorOf(() => parseDataset(text, { space, file }));
        expect(error.message).toMatch(pattern);
        expect(error.file).toBe(file);
      });
    }
  });
});
