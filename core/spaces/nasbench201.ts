/**
 * NAS-Bench-201 (Dong & Yang, ICLR 2020), CIFAR-10: one cell, repeated, of 4 nodes and 6
 * edges (j <- i for i < j), each edge one of 5 ops; 5^6 = 15,625 cells.
 *
 * Native arch: `{"arch_str": "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"}`, the benchmark's own
 * string: group j lists the edges into node j from nodes 0..j-1.
 *
 * Macro-architecture (`TinyNetwork` with C = 16, N = 5): stem 3x3 conv (16) + BN; 5 cells at
 * C = 16 (32x32); a residual reduction block (ReLU-conv3x3 s2-BN, ReLU-conv3x3-BN, shortcut
 * 2x2 avg pool + 1x1 conv) to 32; 5 cells at 32 (16x16); one to 64; 5 cells at 64 (8x8);
 * BN + ReLU, global pool, FC 10. Cell edges: `nor_conv_KxK` = ReLU -> KxK conv -> BN,
 * `avg_pool_3x3` (stride 1, padding not counted), `skip_connect` = identity, `none` = zero.
 * A node is the sum of its incoming edges.
 *
 * Normalised form: units are the three target nodes (node 1: 1 slot, node 2: 2, node 3: 3; slot
 * i is the edge from node i, the order of the arch string). A block is `{op: 2|3|4, skip: 0}`
 * (conv 1x1, conv 3x3, avg pool: the ops that compute) or a non-layer `{op: 2, skip: 1}`
 * (`none`) / `{op: 2, skip: 2}` (`skip_connect`). Depth = edges that compute (0..6).
 *
 * Liveness (docs/spaces.md): an edge is *effective* when it is not `none` and its target node
 * reaches the cell output through edges that are not `none`; only effective edges are built
 * into the layer graph, since a runtime never computes what cannot reach the output. A node
 * with no effective input is zero; a cell is *dead* when no path of non-`none` edges joins
 * its input to its output. A dead cell's network still runs its stem, reduction blocks and
 * head (and any effective edge, on zeros).
 */
import { ArchValidationError } from '../errors.ts';
import { GraphBuilder, type Tensor } from './graph-builder.ts';
import { checkObject, isSkip, skipBlock } from './subnet.ts';
import type { CombinationFeatures, LayerGraph, SearchSpace, Subnet, UnitDef } from './types.ts';

export interface NasBench201Arch {
  arch_str: string;
}

/** The benchmark's op names; the index is the value in a normalised block's `op`. */
export const NB201_OPS = [
  'none',
  'skip_connect',
  'nor_conv_1x1',
  'nor_conv_3x3',
  'avg_pool_3x3',
] as const;
export type NasBench201Op = (typeof NB201_OPS)[number];
const NONE = 0;
const SKIP_CONNECT = 1;
/** Ops that compute (depth counts them), in `op` order. */
const LAYER_OPS = [2, 3, 4] as const;

/** Edges (from, to) in arch-string order. */
export const NB201_EDGES: readonly (readonly [number, number])[] = [
  [0, 1],
  [0, 2],
  [1, 2],
  [0, 3],
  [1, 3],
  [2, 3],
];

const CHANNELS = [16, 32, 64] as const;
const CELLS_PER_STAGE = 5;
const RESOLUTION = 32;
const CLASSES = 10;

const units: UnitDef[] = [1, 2, 3].map((node) => ({
  name: `node${node} (edges from nodes 0..${node - 1})`,
  minDepth: node,
  maxDepth: node,
  blockChoices: [
    { name: 'op', values: LAYER_OPS },
    { name: 'skip', values: [0, 1, 2] },
  ],
  unitChoices: [],
}));

/** The op index (into `NB201_OPS`) of each edge, arch-string order. */
export function cellOps(subnet: Subnet): number[] {
  return subnet.units.flatMap((unit) =>
    unit.blocks.map((block) => {
      if (!isSkip(block)) return block.op as number;
      return block.skip === 1 ? NONE : SKIP_CONNECT;
    }),
  );
}

export interface CellLiveness {
  /** Per edge: not `none` and its target reaches the output through non-`none` edges. */
  readonly effective: readonly boolean[];
  /** Per edge: effective and its source is reached from the input through non-`none` edges. */
  readonly live: readonly boolean[];
  /** No path of non-`none` edges from the cell's input to its output. */
  readonly dead: boolean;
}

/** Which edges of a cell compute and which lie on an input-to-output path. */
export function cellLiveness(ops: readonly number[]): CellLiveness {
  const reached = [true, false, false, false];
  for (let j = 1; j <= 3; j++) {
    reached[j] = NB201_EDGES.some(([i, to], e) => to === j && reached[i] && ops[e] !== NONE);
  }
  const reaches = [false, false, false, true];
  for (let i = 2; i >= 0; i--) {
    reaches[i] = NB201_EDGES.some(([from, j], e) => from === i && reaches[j] && ops[e] !== NONE);
  }
  const effective = NB201_EDGES.map(([, j], e) => ops[e] !== NONE && (reaches[j] as boolean));
  const live = NB201_EDGES.map(([i], e) => (effective[e] as boolean) && (reached[i] as boolean));
  return { effective, live, dead: !reached[3] };
}

function parseArchStr(value: unknown): number[] {
  const example =
    '"|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"';
  if (typeof value !== 'string') {
    throw new ArchValidationError(
      'arch_str',
      `expected the NAS-Bench-201 string, e.g. ${example}, got ${JSON.stringify(value)?.slice(0, 80)}`,
    );
  }
  const groups = value.split('+');
  if (groups.length !== 3) {
    throw new ArchValidationError(
      'arch_str',
      `expected 3 node groups joined by "+" (nodes 1, 2, 3), got ${groups.length}; e.g. ${example}`,
    );
  }
  const ops: number[] = [];
  groups.forEach((group, g) => {
    const node = g + 1;
    if (!group.startsWith('|') || !group.endsWith('|')) {
      throw new ArchValidationError(
        `arch_str node ${node}`,
        `"${group}" must start and end with "|"; e.g. ${example}`,
      );
    }
    const edges = group.slice(1, -1).split('|');
    if (edges.length !== node) {
      throw new ArchValidationError(
        `arch_str node ${node}`,
        `expected ${node} edge${node > 1 ? 's' : ''} (from nodes 0..${node - 1}), got ${edges.length} in "${group}"`,
      );
    }
    edges.forEach((edge, i) => {
      const [name, from] = edge.split('~');
      if (from !== String(i)) {
        throw new ArchValidationError(
          `arch_str node ${node} edge ${i}`,
          `"${edge}" must come from node ${i} ("op~${i}"), in order`,
        );
      }
      const op = (NB201_OPS as readonly string[]).indexOf(name ?? '');
      if (op < 0) {
        throw new ArchValidationError(
          `arch_str node ${node} edge ${i}`,
          `unknown op "${name}"; allowed ops are ${NB201_OPS.join(', ')}`,
        );
      }
      ops.push(op);
    });
  });
  return ops;
}

/** The arch string of edge ops (indices into `NB201_OPS`, arch-string order). */
export function archString(ops: readonly number[]): string {
  let at = 0;
  return [1, 2, 3]
    .map((node) => {
      const edges = Array.from(
        { length: node },
        (_, i) => `${NB201_OPS[ops[at++] as number]}~${i}`,
      );
      return `|${edges.join('|')}|`;
    })
    .join('+');
}

function parse(native: unknown): Subnet {
  const arch = checkObject(native, 'nasbench201');
  for (const key of Object.keys(arch)) {
    if (key !== 'arch_str') {
      throw new ArchValidationError(key, 'unknown field; a nasbench201 arch has only arch_str');
    }
  }
  const ops = parseArchStr(arch.arch_str);
  let at = 0;
  return {
    resolution: RESOLUTION,
    globals: {},
    units: units.map((unit) => ({
      choices: {},
      blocks: Array.from({ length: unit.maxDepth }, () => {
        const op = ops[at++] as number;
        if (op === NONE) return skipBlock(unit, 1);
        if (op === SKIP_CONNECT) return skipBlock(unit, 2);
        return { op, skip: 0 };
      }),
    })),
  };
}

function toNative(subnet: Subnet): NasBench201Arch {
  return { arch_str: archString(cellOps(subnet)) };
}

/** One cell: only effective edges are built; a node without effective inputs is zero. */
function cell(g: GraphBuilder, x: Tensor, ops: readonly number[]): Tensor {
  const { effective } = cellLiveness(ops);
  const nodes: (Tensor | undefined)[] = [x];
  for (let j = 1; j <= 3; j++) {
    let sum: Tensor | undefined;
    NB201_EDGES.forEach(([i, to], e) => {
      if (to !== j || !effective[e]) return;
      // An effective edge out of a node without inputs computes on that node's zeros.
      const source = nodes[i] ?? g.zero(x);
      nodes[i] = source;
      const op = ops[e] as number;
      let out: Tensor;
      if (op === SKIP_CONNECT) out = source;
      else if (op === 4) out = g.pool(source, 'avg', 3, 1);
      else out = g.conv(g.act(source, 'relu'), { cout: x.channels, kernel: op === 3 ? 3 : 1 });
      sum = sum ? g.add(sum, out) : out;
    });
    nodes.push(sum);
  }
  return nodes[3] ?? g.zero(x);
}

/** NAS-Bench-201's `ResNetBasicblock` with stride 2. */
function reduction(g: GraphBuilder, x: Tensor, cout: number): Tensor {
  let h = g.conv(g.act(x, 'relu'), { cout, kernel: 3, stride: 2 });
  h = g.conv(g.act(h, 'relu'), { cout, kernel: 3 });
  const shortcut = g.conv(g.pool(x, 'avg', 2, 2), { cout, kernel: 1 });
  return g.add(shortcut, h);
}

function layerGraph(subnet: Subnet): LayerGraph {
  const ops = cellOps(subnet);
  const g = new GraphBuilder('nasbench201', RESOLUTION);
  let x = g.conv(g.input(), { cout: CHANNELS[0], kernel: 3 });
  CHANNELS.forEach((c, stage) => {
    if (stage > 0) x = reduction(g, x, c);
    for (let i = 0; i < CELLS_PER_STAGE; i++) x = cell(g, x, ops);
  });
  x = g.bn(x, 'relu');
  x = g.globalPool(x);
  x = g.linear(x, CLASSES);
  return g.build(x);
}

const OP_LABELS = ['skip_connect', 'conv1x1', 'conv3x3', 'pool'] as const;
/** Column of an op (index into `NB201_OPS`, not `none`) among `OP_LABELS`. */
const opColumn = (op: number) => op - 1;

/**
 * What FCC adds for a cell (docs/encodings.md): per edge and op whether the edge is
 * effective (it computes in the deployed graph), the effective-op counts, and whether the
 * cell is dead. Measured Pixel 3 latency follows the effective edges, not all edges.
 */
const cellFeatures: CombinationFeatures = {
  labels: [
    ...NB201_EDGES.flatMap(([i, j]) => OP_LABELS.map((op) => `eff.${j}<-${i}.${op}`)),
    ...OP_LABELS.map((op) => `eff.count.${op}`),
    'dead',
  ],
  fill(subnet, out, offset) {
    const ops = cellOps(subnet);
    const { effective, dead } = cellLiveness(ops);
    const counts = offset + NB201_EDGES.length * OP_LABELS.length;
    ops.forEach((op, e) => {
      if (!effective[e]) return;
      out[offset + e * OP_LABELS.length + opColumn(op)] = 1;
      out[counts + opColumn(op)] = (out[counts + opColumn(op)] as number) + 1;
    });
    out[counts + OP_LABELS.length] = dead ? 1 : 0;
  },
};

export const nasbench201: SearchSpace<NasBench201Arch> = {
  name: 'nasbench201',
  description:
    'NAS-Bench-201 (CIFAR-10, 32x32): one cell of 6 edges repeated 15 times, each edge none, skip_connect, conv 1x1, conv 3x3 or avg pool 3x3',
  resolutions: [RESOLUTION],
  globalChoices: [],
  units,
  blockChoiceNames: ['op', 'skip'],
  unitChoiceNames: [],
  parse,
  toNative,
  layerGraph,
  combinationFeatures: cellFeatures,
};
