/**
 * The example spec spaces (examples/spaces) that the space-wide tests cover beside the
 * built-in spaces: one with mixed units, a tiny MBConv space and a layer-wise FBNet-like one.
 */
import { readFile } from 'node:fs/promises';
import { spaceFromSpec } from '../../core/spaces/spec.ts';
import type { SearchSpace } from '../../core/spaces/types.ts';

export const exampleSpecFiles = [
  'examples/spaces/mixed.json',
  'examples/spaces/tiny-mbconv.json',
  'examples/spaces/layerwise-fbnet.json',
] as const;

/** Each example spec with the space it defines (the spec is what a predictor records). */
export async function exampleSpecSpaces(): Promise<{ space: SearchSpace; spec: unknown }[]> {
  return Promise.all(
    exampleSpecFiles.map(async (file) => {
      const spec: unknown = JSON.parse(await readFile(file, 'utf8'));
      return { space: spaceFromSpec(spec), spec };
    }),
  );
}
