/**
 * User-defined search spaces from a declarative JSON spec, so a new supernet needs no code.
 * A spec lists units (stages) with a block type, a depth range, a width, a stride and the
 * per-block choice sets; the layer graph is built from the block type's template (the same
 * templates as the built-in spaces). docs/spaces.md documents the format.
 *
 * Native arch of a spec space: `{"d":[per unit], "blocks":[[{feature: value}] per unit], "r":R}`
 * where `blocks[u]` lists exactly `d[u]` blocks; a feature with a single allowed value may
 * be left out of a block. When some unit has a choice of widths, `"w":[per unit]` gives them.
 * A unit with `"skip": true` is layer-wise (a fixed number of slots, FBNet-style): any block
 * may be `{"skip": 1}` instead. The `fbnet` block type is FBNet's layer (1x1 grouped conv ->
 * shuffle -> depthwise -> 1x1 grouped conv), with choices kernel, expand and groups.
 */
import { z } from 'zod';
import { ArchValidationError, ValidationError } from '../errors.ts';
import { checkSpaceBounds, type ResourceBounds } from './bounds.ts';
import { denseLayer, transition } from './densenet.ts';
import { fbnetLayer, fbnetSkip } from './fbnet.ts';
import { GraphBuilder, type Tensor } from './graph-builder.ts';
import { builtInSpaces } from './index.ts';
import { mbconv } from './mobilenetv3.ts';
import { bottleneck } from './resnet50.ts';
import { checkChoice, checkObject, checkResolution, isSkip, skipBlock } from './subnet.ts';
import {
  type Activation,
  type ChoiceDef,
  type LayerGraph,
  type SearchSpace,
  SKIP_CHOICE,
  type Subnet,
  type UnitDef,
} from './types.ts';

/** The per-block features of each block type, with the value used when a spec omits one. */
const BLOCK_FEATURES = {
  mbconv: { kernel: [3], expand: [6] },
  bottleneck: { kernel: [3], expand: [0.25] },
  conv: { kernel: [3] },
  dense: { kernel: [3], growth: [32], bnSize: [4] },
  fbnet: { kernel: [3], expand: [1], groups: [1] },
} as const satisfies Record<string, Record<string, readonly number[]>>;

/**
 * Canonical order of block features across all block types; `skip` (layer-wise units, see
 * types.ts) comes last.
 */
const FEATURE_ORDER = ['kernel', 'expand', 'growth', 'bnSize', 'groups', SKIP_CHOICE] as const;

const activation = z.enum(['relu', 'h_swish', 'none']);
const positiveInt = z.number().int().positive();
const values = (item: z.ZodNumber) =>
  z
    .array(item)
    .min(1)
    .refine((v) => new Set(v).size === v.length, 'values must be distinct');
const kernels = values(positiveInt.refine((k) => k % 2 === 1, 'kernel sizes must be odd'));

const unitBase = {
  name: z.string().min(1).optional(),
  minDepth: positiveInt.max(64),
  maxDepth: positiveInt.max(64),
  /** Output channels, or a choice of them made once per unit (like OFA ResNet's stage width). */
  width: z.union([positiveInt, values(positiveInt)]),
  stride: z.union([z.literal(1), z.literal(2)]),
  /**
   * Layer-wise unit: any of its slots may be a skip (identity, or 1x1 conv + ReLU where the
   * stride or width changes; a dense layer's skip adds nothing). Needs minDepth = maxDepth.
   */
  skip: z.boolean().default(false),
};

const unitSchema = z.discriminatedUnion('block', [
  z.strictObject({
    ...unitBase,
    block: z.literal('mbconv'),
    act: activation.default('relu'),
    se: z.boolean().default(false),
    choices: z
      .strictObject({
        kernel: kernels.optional(),
        expand: values(z.number().positive()).optional(),
      })
      .default({}),
  }),
  z.strictObject({
    ...unitBase,
    block: z.literal('bottleneck'),
    choices: z
      .strictObject({
        kernel: kernels.optional(),
        expand: values(z.number().positive().max(4)).optional(),
      })
      .default({}),
  }),
  z.strictObject({
    ...unitBase,
    block: z.literal('conv'),
    act: activation.default('relu'),
    choices: z.strictObject({ kernel: kernels.optional() }).default({}),
  }),
  z.strictObject({
    ...unitBase,
    block: z.literal('fbnet'),
    choices: z
      .strictObject({
        kernel: kernels.optional(),
        expand: values(positiveInt.max(16)).optional(),
        groups: values(positiveInt.max(64)).optional(),
      })
      .default({}),
  }),
  z.strictObject({
    ...unitBase,
    block: z.literal('dense'),
    choices: z
      .strictObject({
        kernel: kernels.optional(),
        growth: values(positiveInt).optional(),
        bnSize: values(positiveInt).optional(),
      })
      .default({}),
  }),
]);

/** The zod schema of a space spec file. */
export const spaceSpec = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, 'use letters, digits, "_", "-" and "." only')
      .max(64),
    description: z.string().optional(),
    resolutions: values(positiveInt.min(8).max(4096)),
    inputChannels: positiveInt.default(3),
    stem: z
      .strictObject({
        width: positiveInt,
        kernel: positiveInt.refine((k) => k % 2 === 1, 'kernel sizes must be odd').default(3),
        stride: z.union([z.literal(1), z.literal(2)]).default(2),
        act: activation.default('relu'),
      })
      .default({ width: 32, kernel: 3, stride: 2, act: 'relu' }),
    units: z.array(unitSchema).min(1).max(32),
    head: z
      .strictObject({
        /** Channels of a 1x1 conv before the global pool (MobileNet style); none when absent. */
        width: positiveInt.optional(),
        act: activation.default('relu'),
        classes: positiveInt.default(1000),
      })
      .default({ act: 'relu', classes: 1000 }),
  })
  .superRefine((spec, ctx) => {
    if (builtInSpaces.has(spec.name)) {
      ctx.addIssue({
        code: 'custom',
        path: ['name'],
        message: `"${spec.name}" is a built-in space; choose another name so datasets stay unambiguous`,
      });
    }
    let cin = spec.stem.width;
    spec.units.forEach((unit, u) => {
      if (unit.maxDepth < unit.minDepth) {
        ctx.addIssue({
          code: 'custom',
          path: ['units', u, 'maxDepth'],
          message: `must be at least minDepth (${unit.minDepth}), got ${unit.maxDepth}`,
        });
      }
      if (unit.skip && unit.maxDepth !== unit.minDepth) {
        ctx.addIssue({
          code: 'custom',
          path: ['units', u, 'skip'],
          message: `a layer-wise unit (skip: true) has a fixed number of slots; set maxDepth = minDepth (got ${unit.minDepth}..${unit.maxDepth})`,
        });
      }
      const widths = Array.isArray(unit.width) ? unit.width : [unit.width];
      if (unit.block === 'fbnet') {
        // Grouped 1x1 convs split both sides into `groups` parts.
        for (const g of unit.choices.groups ?? [1]) {
          const bad = [cin, ...widths].find((c) => c % g !== 0);
          if (bad !== undefined) {
            ctx.addIssue({
              code: 'custom',
              path: ['units', u, 'choices', 'groups'],
              message: `groups ${g} must divide the unit's input and output channels, not ${bad}`,
            });
          }
        }
      }
      cin = widths.length === 1 ? (widths[0] as number) : Number.NaN;
    });
  });

export type SpaceSpec = z.infer<typeof spaceSpec>;
type UnitSpec = SpaceSpec['units'][number];

export interface SpecArch {
  d: number[];
  blocks: Record<string, number>[][];
  /** Unit widths; only in spaces where some unit has a choice of widths. */
  w?: number[];
  r: number;
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

/** Parses a spec; throws `ValidationError` naming the first wrong field (e.g. `units[2].maxDepth`). */
export function parseSpec(json: unknown): SpaceSpec {
  const result = spaceSpec.safeParse(json);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.length ? fieldPath(issue.path) : 'spec';
  const others = result.error.issues.length - 1;
  const more = others > 0 ? ` (and ${others} more problem${others > 1 ? 's' : ''})` : '';
  throw new ValidationError(field, `${issue?.message ?? 'invalid space spec'}${more}`);
}

function featureValues(unit: UnitSpec): Record<string, readonly number[]> {
  const defaults: Record<string, readonly number[]> = BLOCK_FEATURES[unit.block];
  const chosen = unit.choices as Record<string, readonly number[] | undefined>;
  const own = Object.fromEntries(
    Object.entries(defaults).map(([name, fallback]) => [name, chosen[name] ?? fallback]),
  );
  return unit.skip ? { ...own, [SKIP_CHOICE]: [0, 1] } : own;
}

/**
 * A `SearchSpace` from a spec (parsed with `parseSpec`, so errors name the field). Its largest
 * subnet is checked against `options.bounds` (core/spaces/bounds.ts) before anything is built:
 * a spec too large for a device throws `ResourceLimitError` naming `spaceSpec`, the field of
 * jobs, run parameters and `POST /runs` that carries it.
 */
export function spaceFromSpec(
  json: unknown,
  options: { bounds?: ResourceBounds | false } = {},
): SearchSpace<SpecArch> {
  const spec = parseSpec(json);
  const features = spec.units.map(featureValues);
  const blockChoiceNames = FEATURE_ORDER.filter((f) => features.some((fs) => f in fs));
  const widths = spec.units.map((unit) => (Array.isArray(unit.width) ? unit.width : [unit.width]));
  const elasticWidth = spec.units.some((unit) => Array.isArray(unit.width));
  const archKeys = elasticWidth ? ['d', 'blocks', 'w', 'r'] : ['d', 'blocks', 'r'];
  // Every unit lists every feature so that blockTuples and encodings see one shape; a feature
  // foreign to a unit's block type is a single value 0, which adds nothing to cardinality.
  const units: UnitDef[] = spec.units.map((unit, u) => ({
    name: unit.name ?? `unit${u + 1} (${unit.block}, w${widths[u]?.join('|')}, s${unit.stride})`,
    minDepth: unit.minDepth,
    maxDepth: unit.maxDepth,
    blockChoices: blockChoiceNames.map(
      (name): ChoiceDef => ({ name, values: features[u]?.[name] ?? [0] }),
    ),
    unitChoices: elasticWidth ? [{ name: 'width', values: widths[u] as number[] }] : [],
  }));

  function parse(native: unknown): Subnet {
    const arch = checkObject(native, spec.name);
    for (const key of Object.keys(arch)) {
      if (!archKeys.includes(key)) {
        throw new ArchValidationError(
          key,
          `unknown field; a ${spec.name} arch has ${archKeys.join(', ')}`,
        );
      }
    }
    const w = arch.w;
    if (elasticWidth && (!Array.isArray(w) || w.length !== units.length)) {
      throw new ArchValidationError(
        'w',
        `expected an array of ${units.length} widths, one per unit`,
      );
    }
    const d = arch.d;
    if (!Array.isArray(d) || d.length !== units.length) {
      throw new ArchValidationError(
        'd',
        `expected an array of ${units.length} depths, one per unit`,
      );
    }
    const blocks = arch.blocks;
    if (!Array.isArray(blocks) || blocks.length !== units.length) {
      throw new ArchValidationError(
        'blocks',
        `expected an array of ${units.length} arrays of blocks, one per unit`,
      );
    }
    const r = checkResolution(arch, spec.resolutions);
    return {
      resolution: r,
      globals: {},
      units: units.map((unit, u) => {
        const allowed = Array.from(
          { length: unit.maxDepth - unit.minDepth + 1 },
          (_, i) => unit.minDepth + i,
        );
        const depth = checkChoice(`d[${u}]`, d[u], allowed);
        const list = blocks[u];
        if (!Array.isArray(list) || list.length !== depth) {
          throw new ArchValidationError(`blocks[${u}]`, `expected d[${u}] = ${depth} blocks`);
        }
        const own = features[u] as Record<string, readonly number[]>;
        const choices: Record<string, number> = elasticWidth
          ? { width: checkChoice(`w[${u}]`, (w as unknown[])[u], widths[u] as number[]) }
          : {};
        return {
          choices,
          blocks: list.map((raw, i) => {
            const field = `blocks[${u}][${i}]`;
            const block = checkObject(raw, `${spec.name} block`);
            for (const key of Object.keys(block)) {
              if (!(key in own)) {
                const hint =
                  key === SKIP_CHOICE ? ' (set "skip": true on the unit to allow skips)' : '';
                throw new ArchValidationError(
                  `${field}.${key}`,
                  `not a feature of ${spec.units[u]?.block} blocks; they have ${Object.keys(own).join(', ')}${hint}`,
                );
              }
            }
            if (
              SKIP_CHOICE in own &&
              block[SKIP_CHOICE] !== undefined &&
              block[SKIP_CHOICE] !== 0
            ) {
              checkChoice(`${field}.${SKIP_CHOICE}`, block[SKIP_CHOICE], [0, 1]);
              // A skip's other features mean nothing: its normal form has the first values.
              return skipBlock(unit, 1);
            }
            const out: Record<string, number> = {};
            for (const choice of unit.blockChoices) {
              const allowedValues = choice.values;
              const fallback =
                choice.name === SKIP_CHOICE || allowedValues.length === 1
                  ? allowedValues[0]
                  : undefined;
              const value = block[choice.name] ?? fallback;
              out[choice.name] = checkChoice(`${field}.${choice.name}`, value, allowedValues);
            }
            return out;
          }),
        };
      }),
    };
  }

  function toNative(subnet: Subnet): SpecArch {
    const arch: SpecArch = {
      d: subnet.units.map((unit) => unit.blocks.length),
      blocks: subnet.units.map((unit, u) => {
        const own = Object.keys(features[u] ?? {});
        return unit.blocks.map((block) =>
          isSkip(block)
            ? { [SKIP_CHOICE]: 1 }
            : Object.fromEntries(
                own.filter((n) => n !== SKIP_CHOICE).map((name) => [name, block[name] as number]),
              ),
        );
      }),
      r: subnet.resolution,
    };
    if (elasticWidth) arch.w = subnet.units.map((unit) => unit.choices.width as number);
    return arch;
  }

  function layerGraph(subnet: Subnet): LayerGraph {
    const g = new GraphBuilder(spec.name, subnet.resolution, spec.inputChannels);
    let x: Tensor = g.conv(g.input(), {
      cout: spec.stem.width,
      kernel: spec.stem.kernel,
      stride: spec.stem.stride,
      act: spec.stem.act,
    });
    subnet.units.forEach((unit, u) => {
      const def = spec.units[u] as UnitSpec;
      const width = elasticWidth ? (unit.choices.width as number) : (widths[u]?.[0] as number);
      if (def.block === 'dense' && (def.stride !== 1 || x.channels !== width)) {
        x = transition(g, x, { cout: width, stride: def.stride });
      }
      unit.blocks.forEach((block, i) => {
        const stride = i === 0 ? def.stride : 1;
        const kernel = block.kernel as number;
        const act: Activation = 'act' in def ? def.act : 'relu';
        if (isSkip(block)) {
          if (def.block !== 'dense') x = fbnetSkip(g, x, { cout: width, stride });
          return;
        }
        switch (def.block) {
          case 'mbconv':
            x = mbconv(g, x, {
              cout: width,
              kernel,
              expand: block.expand as number,
              stride,
              act,
              se: def.se,
            });
            break;
          case 'bottleneck':
            x = bottleneck(g, x, {
              cout: width,
              expand: block.expand as number,
              stride,
              kernel,
            });
            break;
          case 'conv':
            x = g.conv(x, { cout: width, kernel, stride, act });
            break;
          case 'fbnet':
            x = fbnetLayer(g, x, {
              cout: width,
              kernel,
              expand: block.expand as number,
              groups: block.groups as number,
              stride,
            });
            break;
          case 'dense':
            x = denseLayer(g, x, {
              growth: block.growth as number,
              bnSize: block.bnSize as number,
              kernel,
            });
            break;
        }
      });
    });
    // Pre-activation dense features need their final bn+relu before pooling.
    if (spec.units[spec.units.length - 1]?.block === 'dense') x = g.bn(x, 'relu');
    if (spec.head.width) x = g.conv(x, { cout: spec.head.width, kernel: 1, act: spec.head.act });
    x = g.globalPool(x);
    x = g.linear(x, spec.head.classes);
    return g.build(x);
  }

  const space: SearchSpace<SpecArch> = {
    name: spec.name,
    description:
      spec.description ??
      `user-defined space: ${spec.units.length} units of ${[...new Set(spec.units.map((u) => u.block))].join('/')} blocks`,
    resolutions: spec.resolutions,
    globalChoices: [],
    units,
    blockChoiceNames,
    unitChoiceNames: elasticWidth ? ['width'] : [],
    parse,
    toNative,
    layerGraph,
  };
  if (options.bounds !== false)
    checkSpaceBounds(space, { field: 'spaceSpec', bounds: options.bounds });
  return space;
}
