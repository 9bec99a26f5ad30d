/**
 * The training domain of a predictor: the resolutions and depths its training rows spanned.
 * A predictor extrapolates badly outside them (a ResNet50 predictor trained at resolution 128
 * predicts the same arch at 224 as faster), so `esm predict` warns about such archs.
 */
import { depth } from '../spaces/subnet.ts';
import type { Subnet } from '../spaces/types.ts';

/** Inclusive `[lo, hi]` ranges of the training rows. */
export interface TrainingDomain {
  readonly resolution: [number, number];
  readonly depth: [number, number];
}

/** The ranges `subnets` span (at least one subnet). */
export function trainingDomain(subnets: readonly Subnet[]): TrainingDomain {
  let r: [number, number] = [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
  let d: [number, number] = [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
  for (const s of subnets) {
    const k = depth(s);
    r = [Math.min(r[0], s.resolution), Math.max(r[1], s.resolution)];
    d = [Math.min(d[0], k), Math.max(d[1], k)];
  }
  return { resolution: r, depth: d };
}

/** Why `subnet` lies outside `domain` ("resolution 224 (trained on 128..128)"), or undefined. */
export function outsideDomain(domain: TrainingDomain, subnet: Subnet): string | undefined {
  const reasons: string[] = [];
  const check = (name: string, value: number, [lo, hi]: readonly [number, number]) => {
    if (value < lo || value > hi) reasons.push(`${name} ${value} (trained on ${lo}..${hi})`);
  };
  check('resolution', subnet.resolution, domain.resolution);
  check('depth', depth(subnet), domain.depth);
  return reasons.length > 0 ? reasons.join(', ') : undefined;
}

/** The subnets (0-based index and reason) that lie outside `domain`. */
export function outsideDomainOf(
  domain: TrainingDomain,
  subnets: readonly Subnet[],
): { index: number; reason: string }[] {
  return subnets.flatMap((subnet, index) => {
    const reason = outsideDomain(domain, subnet);
    return reason === undefined ? [] : [{ index, reason }];
  });
}

/**
 * The one-line warning `esm predict` and `esm cloud predict` print when some of `total` archs
 * lie outside the training domain (`outside`: their 0-based indices and reasons), or
 * undefined when none do.
 */
export function outsideDomainWarning(
  outside: readonly { index: number; reason: string }[],
  total: number,
): string | undefined {
  const first = outside[0];
  if (!first) return undefined;
  return (
    `warning: ${outside.length} of ${total} archs lie outside what the predictor was trained on; ` +
    `its predictions there are extrapolations (first: arch ${first.index + 1}: ${first.reason})`
  );
}
