/**
 * The Python module (python/) from the vitest suite, so CI runs it: the TypeScript side writes
 * test vectors (native archs with their arch rows, invalid archs with the field the
 * TypeScript parser names, saved predictor directories with the latencies `esm predict`
 * computes), then `python3 -m unittest` checks the pure-Python rows against them and, where
 * onnxruntime is importable, the predictions. Where it is not (this project's machines: no
 * PyPI), those tests are skipped with the reason printed and the run still exits 0.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchValidationError } from '../../core/errors.ts';
import { archRow, archRowLayout, archRowLayoutJson } from '../../core/onnx/arch-graph-layout.ts';
import { fitPredictor } from '../../core/predictor/index.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import type { ModelKind } from '../../core/predictor/types.ts';
import { createRng } from '../../core/rng.ts';
import { builtInSpaces } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import type { SearchSpace } from '../../core/spaces/types.ts';
import { loadPredictor, savePredictor } from '../../local/predictor-store.ts';
import { commandWorks, serviceAvailable } from '../support/services.ts';
import { exampleSpecSpaces } from '../support/spec-spaces.ts';
import { telemetryOnEnv } from '../support/telemetry-env.ts';

const PYTHON = process.env.PYTHON ?? 'python3';
const hasPython = serviceAvailable(
  'python3',
  commandWorks(PYTHON, ['-c', 'import sys; assert sys.version_info >= (3, 8)']),
  'install Python 3.8 or later, or set PYTHON',
);

/** Where Python's onnxruntime is missing, the suite's onnxruntime part runs through the
 * stand-in in ort-bridge/ (the API esm_predictor calls, executed by onnxruntime-node). */
const hasRealOnnxruntime = hasPython && commandWorks(PYTHON, ['-c', 'import onnxruntime']);
const hasNumpy = hasPython && commandWorks(PYTHON, ['-c', 'import numpy']);
if (hasPython && !hasRealOnnxruntime && !hasNumpy) {
  console.warn(
    'skipping the onnxruntime-node bridge run of the Python module: numpy is not importable',
  );
}

type Native = Record<string, unknown>;

/** One change per invalid arch, so both parsers can only name one field. */
const invalidEdits: Record<string, (a: Native) => void> = {
  mobilenetv3: (a) => {
    (a.ks as number[])[0] = 4;
  },
  resnet50: (a) => {
    (a.w as number[])[2] = 3;
  },
  densenet: (a) => {
    (a.g as number[])[0] = 17;
  },
  fbnet: (a) => {
    (a.ops as number[])[0] = 9;
  },
  'fbnet-imagenet': (a) => {
    (a.ops as number[])[3] = 'k7_e1' as never;
  },
  nasbench201: (a) => {
    a.arch_str = String(a.arch_str).replace(/^\|[a-z_0-9]+~0\|/, '|conv_5x5~0|');
  },
  spec: (a) => {
    const blocks = a.blocks as Record<string, number>[][];
    (blocks[0]?.[0] as Record<string, number>).kernel = 4;
  },
};
const depthEdit = (space: SearchSpace) => (a: Native) => {
  // Layer-wise spaces have no depth field: a wrong-length op list (fbnet), a node group
  // with an edge too many (nasbench201).
  if (Array.isArray(a.ops)) a.ops = (a.ops as number[]).slice(1);
  else if (typeof a.arch_str === 'string') a.arch_str = a.arch_str.replace('~0|+', '~0|none~1|+');
  else (a.d as number[])[space.name === 'resnet50' ? 1 : 0] = 9;
};
const resolutionEdit = (a: Native) => {
  a.r = 1;
};

function tsField(space: SearchSpace, arch: Native): string {
  try {
    space.parse(arch);
  } catch (error) {
    if (error instanceof ArchValidationError) return error.field;
  }
  throw new Error(`the edited ${space.name} arch parsed: the test vector is wrong`);
}

describe.skipIf(!hasPython)('Python module esm_predictor', () => {
  let dir: string;
  let vectorsFile: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'esm-python-'));
    // Every built-in space and three spec spaces (one layer-wise).
    const spaces: { space: SearchSpace; spec: unknown }[] = [...builtInSpaces.values()].map(
      (space) => ({ space, spec: null }),
    );
    spaces.push(...(await exampleSpecSpaces()));
    const vectors = { spaces: [] as unknown[], predictors: [] as unknown[] };
    for (const { space, spec } of spaces) {
      const rng = createRng(21);
      const subnets = Array.from({ length: 40 }, () => randomSubnet(space, rng));
      const natives = subnets.map((s) => space.toNative(s) as Native);
      const edits = [
        invalidEdits[spec === null ? space.name : 'spec'],
        depthEdit(space),
        resolutionEdit,
      ];
      const invalid = edits.map((edit) => {
        const arch = structuredClone(natives[0] as Native);
        edit?.(arch);
        return { arch, field: tsField(space, arch) };
      });
      vectors.spaces.push({
        space: space.name,
        spec,
        layout: archRowLayoutJson(archRowLayout(space)),
        cases: natives.map((arch, i) => ({ arch, row: archRow(space, subnets[i] as never) })),
        invalid,
      });
      const models: ModelKind[] =
        space.name === 'mobilenetv3' ? ['ridge', 'mlp', 'lut', 'auto'] : ['ridge'];
      for (const model of models) {
        const { predictor } = await fitPredictor({
          space,
          spaceSpec: spec ?? undefined,
          rows: subnets.map((subnet) => ({
            subnet,
            latencyMs: syntheticLatencyMs(space, subnet, { noise: 0.01, rng }),
          })),
          data: { file: 'synthetic', sha256: '0'.repeat(64) },
          model,
          options: { mlp: { maxEpochs: 3, hidden: [16] } },
        });
        const out = join(dir, `${space.name}-${model}`);
        await savePredictor(out, predictor);
        const loaded = await loadPredictor(out);
        const expected = Array.from(await loaded.predict(natives));
        await loaded.close();
        vectors.predictors.push({ space: space.name, dir: out, archs: natives, expected });
      }
    }
    vectorsFile = join(dir, 'vectors.json');
    await writeFile(vectorsFile, JSON.stringify(vectors));
  }, 120_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('passes its unittest suite against the TypeScript vectors (onnxruntime part skipped where missing)', () => {
    // Act
    const run = spawnSync(PYTHON, ['-m', 'unittest', 'discover', '-s', 'tests', '-t', '.', '-v'], {
      cwd: resolve('python'),
      env: { ...process.env, ESM_TEST_VECTORS: vectorsFile, PYTHONDONTWRITEBYTECODE: '1' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    const output = `${run.stdout}\n${run.stderr}`;
    // Assess
    expect(run.status, output).toBe(0);
    expect(output).toMatch(/test_rows_equal_typescript_rows_for_every_space \S+ \.\.\. ok/);
    expect(output).toMatch(/test_an_invalid_arch_names_the_field_typescript_names \S+ \.\.\. ok/);
    const ran = Number(/Ran (\d+) tests?/.exec(output)?.[1] ?? 0);
    expect(ran).toBeGreaterThanOrEqual(8);
    const onnx = /test_predicts_what_esm_predict_printed \S+ \.\.\. (ok|skipped)/.exec(output)?.[1];
    if (onnx === 'skipped') {
      expect(output).toContain('onnxruntime is not importable');
      console.warn('Python onnxruntime tests skipped: onnxruntime is not importable here');
    } else {
      expect(onnx).toBe('ok');
    }
  }, 120_000);

  it.skipIf(hasRealOnnxruntime || !hasNumpy)(
    "predicts through onnxruntime-node where Python's onnxruntime is missing (the stand-in in ort-bridge/)",
    async () => {
      // Prepare: a TMPDIR of its own, the variable the suite sets and CI markers unset, so
      // only esm_predictor can turn onnxruntime's telemetry off (else mat-debug-PID.log here).
      const ownTmp = await mkdtemp(join(tmpdir(), 'esm-python-tmp-'));
      const env = telemetryOnEnv();
      // Act
      const run = spawnSync(PYTHON, ['-m', 'unittest', 'tests.test_predictor', '-v'], {
        cwd: resolve('python'),
        env: {
          ...env,
          TMPDIR: ownTmp,
          ESM_TEST_VECTORS: vectorsFile,
          ESM_NODE: process.execPath,
          PYTHONPATH: resolve('test/python/ort-bridge'),
          PYTHONDONTWRITEBYTECODE: '1',
        },
        encoding: 'utf8',
        timeout: 120_000,
      });
      const output = `${run.stdout}\n${run.stderr}`;
      // Assess
      expect(run.status, output).toBe(0);
      expect(output).not.toMatch(/skipped/);
      for (const name of [
        'test_predicts_what_esm_predict_printed',
        'test_a_row_the_space_does_not_allow_predicts_nan',
        'test_ofa_evolution_finder_calls_work_unchanged',
      ]) {
        expect(output).toMatch(new RegExp(`${name} \\S+ \\.\\.\\. ok`));
      }
      expect(await readdir(ownTmp)).not.toContainEqual(expect.stringMatching(/^mat-debug-/));
    },
    120_000,
  );

  it('installs with pip offline (no index, nothing to download) and imports', async () => {
    // Prepare
    const target = join(dir, 'site');
    // Act
    const pip = spawnSync(
      PYTHON,
      ['-m', 'pip', 'install', '--no-index', '--no-deps', '--target', target, resolve('python')],
      {
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' },
      },
    );
    if (pip.status !== 0 && /No module named pip/.test(pip.stderr)) {
      console.warn('skipping the pip install check: this python3 has no pip');
      return;
    }
    const layoutFile = join(dir, 'mobilenetv3-ridge', 'predictor-arch.json');
    const use = spawnSync(
      PYTHON,
      [
        '-c',
        `import esm_predictor as m; l = m.Layout.from_file(${JSON.stringify(layoutFile)}); print(m.__file__); print(m.arch_row({"ks":[3]*20,"e":[6]*20,"d":[2,2,2,2,2],"r":[160]}, l))`,
      ],
      { encoding: 'utf8', cwd: tmpdir(), env: { ...process.env, PYTHONPATH: target } },
    );
    // Assess
    expect(pip.status, pip.stderr).toBe(0);
    expect(use.status, use.stderr).toBe(0);
    const [file, row] = use.stdout.trim().split('\n');
    expect(file?.startsWith(target)).toBe(true);
    const ks = [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3];
    const e = [6, 6, 3, 3, 6, 6, 3, 3, 6, 6, 3, 3, 6, 6, 3, 3, 6, 6, 3, 3];
    expect(JSON.parse(row ?? '[]')).toEqual([...ks, ...e, 2, 2, 2, 2, 2, 160]);
  }, 120_000);
});
