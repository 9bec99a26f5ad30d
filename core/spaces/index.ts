/** Built-in search spaces by name. User-defined spaces come from `spaceFromSpec` (spec.ts). */
import { UnknownSpaceError } from '../errors.ts';
import { densenet } from './densenet.ts';
import { fbnet, fbnetImagenet } from './fbnet.ts';
import { mobilenetv3 } from './mobilenetv3.ts';
import { nasbench201 } from './nasbench201.ts';
import { resnet50 } from './resnet50.ts';
import type { SearchSpace } from './types.ts';

export const builtInSpaces: ReadonlyMap<string, SearchSpace> = new Map<string, SearchSpace>([
  [mobilenetv3.name, mobilenetv3],
  [resnet50.name, resnet50],
  [densenet.name, densenet],
  [fbnet.name, fbnet],
  [fbnetImagenet.name, fbnetImagenet],
  [nasbench201.name, nasbench201],
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

export type { LayerGraph, LayerNode, SearchSpace, Subnet } from './types.ts';
