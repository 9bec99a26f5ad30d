/**
 * Resource bounds: how large a network the platform agrees to build and time. A space is
 * judged by its largest subnet (every unit at its deepest, every choice at its largest value,
 * the largest resolution), costed from the layer graph (core/spaces/cost.ts) before any ONNX
 * model is built, so a schema-valid spec with width 4000 is refused in milliseconds instead of
 * taking a device's memory (docs/spaces.md, "Resource bounds").
 *
 * The defaults leave every built-in space several times inside each limit and stop what would
 * exhaust a Raspberry Pi-class device (1-4 GB of memory).
 */
import { ValidationError } from '../errors.ts';
import { type GraphCost, graphCost } from './cost.ts';
import type { SearchSpace, Subnet } from './types.ts';

export interface ResourceBounds {
  /** Parameters of the largest subnet. @default 100_000_000 (400 MB of float32 weights) */
  readonly maxParams: number;
  /** Multiply-accumulates of one inference of the largest subnet at batch 1. @default 50e9 */
  readonly maxMacs: number;
  /**
   * Peak live activation memory of one inference, in bytes, times the batch size.
   * @default 512 MiB
   */
  readonly maxActivationBytes: number;
}

export const defaultBounds: ResourceBounds = {
  maxParams: 100_000_000,
  maxMacs: 50e9,
  maxActivationBytes: 512 * 2 ** 20,
};

/**
 * A space or job whose networks would exceed a `ResourceBounds` limit. The constructor keeps
 * `ValidationError`'s shape, so handlers that re-field errors (`underField`) keep the class.
 */
export class ResourceLimitError extends ValidationError {
  constructor(
    field: string,
    message: string,
    options?: {
      cause?: unknown;
      /** The limit exceeded, its value and what was needed. */
      limit?: keyof ResourceBounds;
      max?: number;
      value?: number;
    },
  ) {
    super(field, message, options);
    this.limit = options?.limit;
    this.max = options?.max;
    this.value = options?.value;
  }
  readonly limit?: keyof ResourceBounds;
  readonly max?: number;
  readonly value?: number;
}

const largest = (values: readonly number[]) => Math.max(...values);

/** Uniform block assignments tried by `largestSubnets` at most; past it, every choice's maximum. */
const MAX_CANDIDATES = 256;

/**
 * Candidates for the costliest subnet: every unit at its maximum depth, unit and global choices
 * at their largest value, and every block given the same assignment of block choices, for each
 * assignment (at most 256; past that, only the largest value of each choice). Larger values
 * cost more in the OFA-style and spec spaces, where the all-largest candidate wins; in
 * layer-wise spaces (FBNet ops, NAS-Bench-201 cells) a choice is a categorical op, so the
 * uniform candidates find the costliest op instead.
 */
export function largestSubnets(space: SearchSpace): Subnet[] {
  const names = space.blockChoiceNames;
  const valuesOf = (name: string) => [
    ...new Set(
      space.units.flatMap((u) => u.blockChoices.find((c) => c.name === name)?.values ?? []),
    ),
  ];
  let assignments: Record<string, number>[] = [{}];
  for (const name of names) {
    const values = valuesOf(name);
    assignments = assignments.flatMap((a) => values.map((v) => ({ ...a, [name]: v })));
    if (assignments.length > MAX_CANDIDATES) {
      assignments = [Object.fromEntries(names.map((n) => [n, largest(valuesOf(n))]))];
      break;
    }
  }
  return assignments.map((assignment) => ({
    resolution: largest(space.resolutions),
    globals: Object.fromEntries(space.globalChoices.map((c) => [c.name, largest(c.values)])),
    units: space.units.map((unit) => ({
      choices: Object.fromEntries(unit.unitChoices.map((c) => [c.name, largest(c.values)])),
      // A value this unit does not allow falls back to its own largest.
      blocks: Array.from({ length: unit.maxDepth }, () =>
        Object.fromEntries(
          unit.blockChoices.map((c) => {
            const v = assignment[c.name];
            return [c.name, v !== undefined && c.values.includes(v) ? v : largest(c.values)];
          }),
        ),
      ),
    })),
  }));
}

/** The costliest of `largestSubnets` by multiply-accumulates. */
export function largestSubnet(space: SearchSpace): Subnet {
  let best: { subnet: Subnet; macs: number } | undefined;
  for (const subnet of largestSubnets(space)) {
    const { macs } = graphCost(space.layerGraph(subnet));
    if (!best || macs > best.macs) best = { subnet, macs };
  }
  return (best as { subnet: Subnet }).subnet;
}

/** Counts in words: 1.2 G, 35.0 M, 512 MiB. */
function amount(value: number, bytes: boolean): string {
  if (bytes) {
    const mib = value / 2 ** 20;
    return mib >= 1024 ? `${(mib / 1024).toFixed(2)} GiB` : `${mib.toFixed(1)} MiB`;
  }
  if (value >= 1e9) return `${(value / 1e9).toFixed(2)} G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)} M`;
  return String(Math.round(value));
}

export interface CheckBoundsOptions {
  /** The input field the space came from, named in the error. @default 'space' */
  readonly field?: string;
  /** Images per inference: activation memory grows with it. @default 1 */
  readonly batchSize?: number;
  /** @default defaultBounds */
  readonly bounds?: ResourceBounds;
  /** What was judged, for the message. @default 'its largest subnet' */
  readonly what?: string;
}

/** Throws `ResourceLimitError` when `cost` exceeds a bound; see `checkSpaceBounds`. */
export function checkCostBounds(cost: GraphCost, options: CheckBoundsOptions = {}): void {
  const { field = 'space', batchSize = 1, bounds = defaultBounds } = options;
  const what = options.what ?? 'its largest subnet';
  const checks: [keyof ResourceBounds, number, string, boolean][] = [
    ['maxParams', cost.params, 'parameters', false],
    ['maxMacs', cost.macs, 'multiply-accumulates per image', false],
    [
      'maxActivationBytes',
      cost.peakActivationBytes * batchSize,
      `of peak activation memory${batchSize > 1 ? ` at batch size ${batchSize}` : ''}`,
      true,
    ],
  ];
  for (const [limit, value, unit, bytes] of checks) {
    const max = bounds[limit];
    if (value > max) {
      throw new ResourceLimitError(
        field,
        `${what} needs ${amount(value, bytes)} ${unit}, over the limit ${limit} = ${amount(max, bytes)}; ` +
          'use narrower widths, fewer blocks, a smaller resolution or batch size (docs/spaces.md#resource-bounds)',
        { limit, max, value },
      );
    }
  }
}

/**
 * The cost of `space`'s largest subnet, checked against the bounds: throws
 * `ResourceLimitError` naming `options.field`, the limit and the value. Returns the cost.
 */
export function checkSpaceBounds(space: SearchSpace, options: CheckBoundsOptions = {}): GraphCost {
  // Each limit is checked against the candidate that costs most in its own measure.
  const costs = largestSubnets(space).map((s) => graphCost(space.layerGraph(s)));
  const worst = (key: 'params' | 'macs' | 'peakActivationBytes') =>
    costs.reduce((a, b) => (b[key] > a[key] ? b : a));
  for (const key of ['params', 'macs', 'peakActivationBytes'] as const) {
    checkCostBounds(worst(key), options);
  }
  return worst('macs');
}
