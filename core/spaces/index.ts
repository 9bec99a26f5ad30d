/** Built-in search spaces by name. User-defined spaces come from `spaceFromSpec` (spec.ts). */
import { UnknownSpaceError, ValidationError } from '../errors.ts';
import { densenet } from './densenet.ts';
import { fbnet, fbnetImagenet } from './fbnet.ts';
import { mobilenetv3 } from './mobilenetv3.ts';
import { nasbench201 } from './nasbench201.ts';
import { resnet50 } from './resnet50.ts';
import type { SearchSpace, Subnet } from './types.ts';

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

/**
 * The built-in spaces other than `space` that parse `arch`, with a phrase naming them for an
 * error message (`; the arch fits space fbnet (also fbnet-imagenet), not mobilenetv3`), or
 * '' when none does. The usual cause of an arch that does not parse is a file of another
 * space (HELP's FBNet files read as MobileNetV3).
 */
export function otherSpacesHint(
  arch: unknown,
  space: SearchSpace,
): { names: string[]; phrase: string } {
  const names = [...builtInSpaces.values()].flatMap((other) => {
    if (other.name === space.name) return [];
    try {
      other.parse(arch);
      return [other.name];
    } catch {
      return [];
    }
  });
  const [first, ...more] = names;
  if (first === undefined) return { names, phrase: '' };
  const also = more.length > 0 ? ` (also ${more.join(', ')})` : '';
  return { names, phrase: `; the arch fits space ${first}${also}, not ${space.name}` };
}

/**
 * `space.parse(arch)`, but an arch that fits another built-in space says which in the error
 * (`otherSpacesHint`); the error keeps its class and field.
 */
export function parseNamingOtherSpaces(space: SearchSpace, arch: unknown): Subnet {
  try {
    return space.parse(arch);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const { phrase } = otherSpacesHint(arch, space);
    if (phrase === '') throw error;
    throw error.restated(error.field, `${error.detail}${phrase}`);
  }
}
