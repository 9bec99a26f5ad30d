/** Built-in search spaces by name. User-defined spaces come from `spaceFromSpec` (spec.ts). */
import { UnknownSpaceError } from '../errors.ts';
import { mobilenetv3 } from './mobilenetv3.ts';
import type { SearchSpace } from './types.ts';

export const builtInSpaces: ReadonlyMap<string, SearchSpace> = new Map<string, SearchSpace>([
  [mobilenetv3.name, mobilenetv3],
]);

/** The built-in space called `name`; throws `UnknownSpaceError` listing the known names. */
export function getSpace(name: string): SearchSpace {
  const space = builtInSpaces.get(name);
  if (!space) {
    throw new UnknownSpaceError(
      'space',
      `unknown space "${name}"; use one of ${[...builtInSpaces.keys()].join(', ')} or a path to a JSON spec file`,
    );
  }
  return space;
}

export type { SearchSpace, Subnet, LayerGraph, LayerNode } from './types.ts';
