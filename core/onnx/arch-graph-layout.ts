/**
 * The arch row: a search-space architecture as one row of integers, the input of the arch-in
 * predictor graph (`predictor-arch.onnx`). The layout is derived from the generic space
 * description (units, per-block choices, per-unit choices, global choices, resolutions), so
 * every built-in space and every user spec space has one without space-specific code:
 *
 * 1. for each block choice (the space's `blockChoiceNames` order), for each unit, for each
 *    slot 0..maxDepth-1: the block's value (MobileNetV3: `ks` x 20 then `e` x 20, OFA order);
 * 2. for each unit choice, for each unit: the unit's value;
 * 3. each unit's depth (number of active blocks);
 * 4. each global choice's value;
 * 5. the resolution.
 *
 * A choice whose values are all integers in 0..4096 is written as the value itself (kernel 7,
 * resolution 224); any other choice (ResNet50's expand 0.25) as the value's index in the
 * choice's value list. Inactive slots are ignored by the graph; `archRow` writes the first
 * value's code there, so rows of the same network are equal. docs/predictor.md lists the
 * layout of each built-in space.
 */
import { ArchValidationError } from '../errors.ts';
import type { ChoiceDef, SearchSpace, Subnet } from '../spaces/types.ts';

export const ARCH_ROW_FORMAT = 'esm-arch-row';
export const ARCH_ROW_VERSION = 1;
/** Name of the arch-in graph's input: int64 [batch, layout length]. */
export const ARCH_INPUT = 'arch';
/** The arch-in graph's file in a predictor directory, beside predictor.onnx. */
export const ARCH_ONNX = 'predictor-arch.onnx';
/** The row layout as JSON, beside the graph, for bindings that do not read ONNX metadata. */
export const ARCH_JSON = 'predictor-arch.json';

/** Largest value written as itself; larger or fractional choices are written as an index. */
const MAX_VALUE_CODE = 4096;

export type ArchRowEntryKind = 'block' | 'unit' | 'depth' | 'global' | 'resolution';

export interface ArchRowEntry {
  /** e.g. `u0.b1.kernel`, `u2.width`, `u3.depth`, `stemSkip`, `resolution`. */
  readonly label: string;
  readonly kind: ArchRowEntryKind;
  /** Unit index (block, unit and depth entries). */
  readonly unit?: number;
  /** Slot within the unit (block entries). */
  readonly slot?: number;
  /** Choice name (block, unit and global entries). */
  readonly choice?: string;
  /** Allowed values in the space's order (depth: minDepth..maxDepth). */
  readonly values: readonly number[];
  /** The integer written for each value, same order: the value, or its index. */
  readonly codes: readonly number[];
  readonly coding: 'value' | 'index';
}

export interface ArchRowLayout {
  readonly format: typeof ARCH_ROW_FORMAT;
  readonly version: typeof ARCH_ROW_VERSION;
  readonly space: string;
  readonly length: number;
  readonly entries: readonly ArchRowEntry[];
  /** Column of block choice `c` (index in `blockChoiceNames`) of slot `slot` of unit `u`. */
  blockColumn(c: number, u: number, slot: number): number;
  /** Column of unit choice `c` (index in `unitChoiceNames`) of unit `u`. */
  unitColumn(c: number, u: number): number;
  depthColumn(u: number): number;
  globalColumn(g: number): number;
  readonly resolutionColumn: number;
}

function coding(values: readonly number[]): 'value' | 'index' {
  return values.every((v) => Number.isInteger(v) && v >= 0 && v <= MAX_VALUE_CODE)
    ? 'value'
    : 'index';
}

function choiceEntry(
  label: string,
  kind: ArchRowEntryKind,
  choice: ChoiceDef,
  where: { unit?: number; slot?: number },
): ArchRowEntry {
  const how = coding(choice.values);
  return {
    label,
    kind,
    ...where,
    choice: choice.name,
    values: choice.values,
    codes: choice.values.map((v, i) => (how === 'value' ? v : i)),
    coding: how,
  };
}

const layoutCache = new WeakMap<SearchSpace, ArchRowLayout>();

/** The arch row layout of `space` (computed once per space). */
export function archRowLayout(space: SearchSpace): ArchRowLayout {
  const cached = layoutCache.get(space);
  if (cached) return cached;
  const entries: ArchRowEntry[] = [];
  const blockStart: number[] = [];
  const unitStart: number[] = [];
  const slotOffset: number[] = [];
  let slots = 0;
  for (const unit of space.units) {
    slotOffset.push(slots);
    slots += unit.maxDepth;
  }
  space.blockChoiceNames.forEach((_, c) => {
    blockStart.push(entries.length);
    space.units.forEach((unit, u) => {
      const choice = unit.blockChoices[c] as ChoiceDef;
      for (let slot = 0; slot < unit.maxDepth; slot++) {
        entries.push(
          choiceEntry(`u${u}.b${slot}.${choice.name}`, 'block', choice, { unit: u, slot }),
        );
      }
    });
  });
  space.unitChoiceNames.forEach((_, c) => {
    unitStart.push(entries.length);
    space.units.forEach((unit, u) => {
      const choice = unit.unitChoices[c] as ChoiceDef;
      entries.push(choiceEntry(`u${u}.${choice.name}`, 'unit', choice, { unit: u }));
    });
  });
  const depthStart = entries.length;
  space.units.forEach((unit, u) => {
    const values = Array.from(
      { length: unit.maxDepth - unit.minDepth + 1 },
      (_, i) => unit.minDepth + i,
    );
    entries.push({
      label: `u${u}.depth`,
      kind: 'depth',
      unit: u,
      values,
      codes: values,
      coding: 'value',
    });
  });
  const globalStart = entries.length;
  for (const g of space.globalChoices) entries.push(choiceEntry(g.name, 'global', g, {}));
  const resolutionColumn = entries.length;
  entries.push(
    choiceEntry('resolution', 'resolution', { name: 'resolution', values: space.resolutions }, {}),
  );
  const layout: ArchRowLayout = {
    format: ARCH_ROW_FORMAT,
    version: ARCH_ROW_VERSION,
    space: space.name,
    length: entries.length,
    entries,
    blockColumn: (c, u, slot) => (blockStart[c] as number) + (slotOffset[u] as number) + slot,
    unitColumn: (c, u) => (unitStart[c] as number) + u,
    depthColumn: (u) => depthStart + u,
    globalColumn: (g) => globalStart + g,
    resolutionColumn,
  };
  layoutCache.set(space, layout);
  return layout;
}

function codeOf(entry: ArchRowEntry, value: number | undefined, field: string): number {
  const i = value === undefined ? -1 : entry.values.indexOf(value);
  if (i < 0) {
    throw new ArchValidationError(
      field,
      `got ${JSON.stringify(value)}, allowed values are ${entry.values.join(', ')}`,
    );
  }
  return entry.codes[i] as number;
}

/**
 * Writes the arch row of `subnet` at `out[offset .. offset + layout.length)`. Inactive slots
 * get the first value's code. Throws `ArchValidationError` naming the field for a value the
 * space does not allow.
 */
export function writeArchRow(
  layout: ArchRowLayout,
  space: SearchSpace,
  subnet: Subnet,
  out: { [i: number]: number },
  offset = 0,
): void {
  if (subnet.units.length !== space.units.length) {
    throw new ArchValidationError(
      'units',
      `expected ${space.units.length} units for space ${space.name}, got ${subnet.units.length}`,
    );
  }
  const { entries } = layout;
  space.units.forEach((unit, u) => {
    const sub = subnet.units[u] as Subnet['units'][number];
    const d = sub.blocks.length;
    const depthColumn = layout.depthColumn(u);
    out[offset + depthColumn] = codeOf(
      entries[depthColumn] as ArchRowEntry,
      d,
      `units[${u}].depth`,
    );
    space.blockChoiceNames.forEach((name, c) => {
      for (let slot = 0; slot < unit.maxDepth; slot++) {
        const column = layout.blockColumn(c, u, slot);
        const entry = entries[column] as ArchRowEntry;
        out[offset + column] =
          slot < d
            ? codeOf(entry, sub.blocks[slot]?.[name], `units[${u}].blocks[${slot}].${name}`)
            : (entry.codes[0] as number);
      }
    });
    space.unitChoiceNames.forEach((name, c) => {
      const column = layout.unitColumn(c, u);
      out[offset + column] = codeOf(
        entries[column] as ArchRowEntry,
        sub.choices[name],
        `units[${u}].${name}`,
      );
    });
  });
  space.globalChoices.forEach((g, i) => {
    const column = layout.globalColumn(i);
    out[offset + column] = codeOf(
      entries[column] as ArchRowEntry,
      subnet.globals[g.name],
      `globals.${g.name}`,
    );
  });
  out[offset + layout.resolutionColumn] = codeOf(
    entries[layout.resolutionColumn] as ArchRowEntry,
    subnet.resolution,
    'resolution',
  );
}

/** The arch row of one subnet as plain numbers (for `esm encode --arch-tensor` and tests). */
export function archRow(space: SearchSpace, subnet: Subnet): number[] {
  const layout = archRowLayout(space);
  const out = new Array<number>(layout.length).fill(0);
  writeArchRow(layout, space, subnet, out);
  return out;
}

/**
 * Arch rows of many subnets as the int64 tensor data onnxruntime takes. The values are small,
 * so each is written as two 32-bit halves (little-endian, like every platform onnxruntime-node
 * ships for) instead of one `BigInt` per entry, which would dominate the prediction time.
 */
export function archRowsInt64(space: SearchSpace, subnets: readonly Subnet[]): BigInt64Array {
  const layout = archRowLayout(space);
  const n = layout.length;
  const rows = new Int32Array(subnets.length * n);
  subnets.forEach((subnet, i) => {
    writeArchRow(layout, space, subnet, rows, i * n);
  });
  const out = new BigInt64Array(rows.length);
  const halves = new Int32Array(out.buffer);
  for (let i = 0; i < rows.length; i++) {
    const v = rows[i] as number;
    halves[2 * i] = v;
    halves[2 * i + 1] = v < 0 ? -1 : 0;
  }
  return out;
}

/** The layout as stored in `predictor-arch.json` and the ONNX metadata. */
export function archRowLayoutJson(layout: ArchRowLayout) {
  return {
    format: layout.format,
    version: layout.version,
    space: layout.space,
    input: ARCH_INPUT,
    length: layout.length,
    entries: layout.entries.map((e) => ({ ...e })),
  };
}
