/**
 * A small, dependency-light ONNX writer: the subset of onnx.proto (ModelProto, GraphProto,
 * NodeProto, AttributeProto, TensorProto, ValueInfoProto) needed to serialise inference
 * graphs. Used for subnets measured on devices and for exported MLP predictors. Pure: it
 * produces bytes and never runs a model.
 */
import protobuf from 'protobufjs';

export type OnnxAttribute =
  | { type: 'int'; value: number }
  | { type: 'ints'; value: readonly number[] }
  | { type: 'float'; value: number }
  | { type: 'floats'; value: readonly number[] }
  | { type: 'string'; value: string }
  | { type: 'strings'; value: readonly string[] };

export const attr = {
  int: (value: number): OnnxAttribute => ({ type: 'int', value }),
  ints: (value: readonly number[]): OnnxAttribute => ({ type: 'ints', value }),
  float: (value: number): OnnxAttribute => ({ type: 'float', value }),
  floats: (value: readonly number[]): OnnxAttribute => ({ type: 'floats', value }),
  string: (value: string): OnnxAttribute => ({ type: 'string', value }),
  strings: (value: readonly string[]): OnnxAttribute => ({ type: 'strings', value }),
};

/** The ONNX-ML operator domain (TreeEnsembleRegressor and friends). */
export const ONNX_ML_DOMAIN = 'ai.onnx.ml';

export interface OnnxNode {
  readonly op: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name?: string;
  /** Operator domain; '' (the default) is the standard ONNX domain. */
  readonly domain?: string;
  readonly attributes?: Readonly<Record<string, OnnxAttribute>>;
}

export interface OnnxInitializer {
  readonly name: string;
  readonly dims: readonly number[];
  /** float32, float64 (double), int32 or int64 values. */
  readonly data: Float32Array | Float64Array | Int32Array | BigInt64Array;
}

export interface OnnxValueInfo {
  readonly name: string;
  readonly elemType: 'float' | 'int64';
  /** A number is a fixed size, a string a symbolic dimension such as `batch`. */
  readonly shape: readonly (number | string)[];
}

export interface OnnxGraph {
  readonly name: string;
  readonly nodes: readonly OnnxNode[];
  readonly initializers: readonly OnnxInitializer[];
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
}

export interface EncodeOptions {
  /** @default 17 */
  opset?: number;
  /**
   * Opset of the ONNX-ML domain, imported when a node uses it.
   * @default 3
   */
  mlOpset?: number;
  /** @default 'esm-platform' */
  producer?: string;
  docString?: string;
  metadata?: Readonly<Record<string, string>>;
}

const DATA_TYPE = { float: 1, int32: 6, int64: 7, double: 11 } as const;
const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, floats: 6, ints: 7, strings: 8 } as const;
const IR_VERSION = 8;

// Field numbers from onnx/onnx.proto (the stable v8 IR).
const root = protobuf.Root.fromJSON({
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            irVersion: { type: 'int64', id: 1 },
            opsetImport: { rule: 'repeated', type: 'OperatorSetIdProto', id: 8 },
            producerName: { type: 'string', id: 2 },
            producerVersion: { type: 'string', id: 3 },
            docString: { type: 'string', id: 6 },
            graph: { type: 'GraphProto', id: 7 },
            metadataProps: { rule: 'repeated', type: 'StringStringEntryProto', id: 14 },
          },
        },
        OperatorSetIdProto: {
          fields: { domain: { type: 'string', id: 1 }, version: { type: 'int64', id: 2 } },
        },
        StringStringEntryProto: {
          fields: { key: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } },
        },
        GraphProto: {
          fields: {
            node: { rule: 'repeated', type: 'NodeProto', id: 1 },
            name: { type: 'string', id: 2 },
            initializer: { rule: 'repeated', type: 'TensorProto', id: 5 },
            input: { rule: 'repeated', type: 'ValueInfoProto', id: 11 },
            output: { rule: 'repeated', type: 'ValueInfoProto', id: 12 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: 'repeated', type: 'string', id: 1 },
            output: { rule: 'repeated', type: 'string', id: 2 },
            name: { type: 'string', id: 3 },
            opType: { type: 'string', id: 4 },
            attribute: { rule: 'repeated', type: 'AttributeProto', id: 5 },
            domain: { type: 'string', id: 7 },
          },
        },
        AttributeProto: {
          fields: {
            name: { type: 'string', id: 1 },
            f: { type: 'float', id: 2 },
            i: { type: 'int64', id: 3 },
            s: { type: 'bytes', id: 4 },
            floats: { rule: 'repeated', type: 'float', id: 7 },
            ints: { rule: 'repeated', type: 'int64', id: 8 },
            strings: { rule: 'repeated', type: 'bytes', id: 9 },
            type: { type: 'int32', id: 20 },
          },
        },
        TensorProto: {
          fields: {
            dims: { rule: 'repeated', type: 'int64', id: 1 },
            dataType: { type: 'int32', id: 2 },
            name: { type: 'string', id: 8 },
            rawData: { type: 'bytes', id: 9 },
          },
        },
        ValueInfoProto: {
          fields: { name: { type: 'string', id: 1 }, type: { type: 'TypeProto', id: 2 } },
        },
        TypeProto: {
          fields: { tensorType: { type: 'TypeProtoTensor', id: 1 } },
        },
        TypeProtoTensor: {
          fields: {
            elemType: { type: 'int32', id: 1 },
            shape: { type: 'TensorShapeProto', id: 2 },
          },
        },
        TensorShapeProto: {
          fields: { dim: { rule: 'repeated', type: 'Dimension', id: 1 } },
        },
        Dimension: {
          oneofs: { value: { oneof: ['dimValue', 'dimParam'] } },
          fields: {
            dimValue: { type: 'int64', id: 1 },
            dimParam: { type: 'string', id: 2 },
          },
        },
      },
    },
  },
});
const ModelProto = root.lookupType('onnx.ModelProto');

function encodeAttribute(name: string, a: OnnxAttribute) {
  switch (a.type) {
    case 'int':
      return { name, type: ATTRIBUTE_TYPE.int, i: a.value };
    case 'ints':
      return { name, type: ATTRIBUTE_TYPE.ints, ints: [...a.value] };
    case 'float':
      return { name, type: ATTRIBUTE_TYPE.float, f: a.value };
    case 'floats':
      return { name, type: ATTRIBUTE_TYPE.floats, floats: [...a.value] };
    case 'string':
      return { name, type: ATTRIBUTE_TYPE.string, s: new TextEncoder().encode(a.value) };
    case 'strings':
      return {
        name,
        type: ATTRIBUTE_TYPE.strings,
        strings: a.value.map((v) => new TextEncoder().encode(v)),
      };
  }
}

function rawBytes(data: OnnxInitializer['data']): Uint8Array {
  // onnx raw_data is little-endian, like every platform onnxruntime-node ships for.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function valueInfo(v: OnnxValueInfo) {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: DATA_TYPE[v.elemType],
        shape: {
          dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

/** Serialise a graph as ONNX ModelProto bytes (IR version 8). */
export function encodeModel(graph: OnnxGraph, options: EncodeOptions = {}): Uint8Array {
  const {
    opset = 17,
    mlOpset = 3,
    producer = 'esm-platform',
    docString = '',
    metadata = {},
  } = options;
  const usesMl = graph.nodes.some((n) => n.domain === ONNX_ML_DOMAIN);
  const message = ModelProto.fromObject({
    irVersion: IR_VERSION,
    opsetImport: [
      { domain: '', version: opset },
      ...(usesMl ? [{ domain: ONNX_ML_DOMAIN, version: mlOpset }] : []),
    ],
    producerName: producer,
    producerVersion: '1',
    docString,
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      node: graph.nodes.map((n, index) => ({
        input: [...n.inputs],
        output: [...n.outputs],
        name: n.name ?? `${n.op}_${index}`,
        opType: n.op,
        ...(n.domain ? { domain: n.domain } : {}),
        attribute: Object.entries(n.attributes ?? {}).map(([k, a]) => encodeAttribute(k, a)),
      })),
      initializer: graph.initializers.map((t) => ({
        name: t.name,
        dims: [...t.dims],
        dataType:
          t.data instanceof Float32Array
            ? DATA_TYPE.float
            : t.data instanceof Float64Array
              ? DATA_TYPE.double
              : t.data instanceof Int32Array
                ? DATA_TYPE.int32
                : DATA_TYPE.int64,
        rawData: rawBytes(t.data),
      })),
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
    },
  });
  return ModelProto.encode(message).finish();
}

interface DecodedValueInfo {
  name: string;
  type?: {
    tensorType?: {
      elemType?: number;
      shape?: { dim?: { dimValue?: number; dimParam?: string }[] };
    };
  };
}
interface DecodedModel {
  opsetImport?: { version?: number }[];
  metadataProps?: { key: string; value: string }[];
  graph?: {
    name?: string;
    node?: {
      input?: string[];
      output?: string[];
      name?: string;
      opType: string;
      domain?: string;
      attribute?: {
        name: string;
        type: number;
        i?: number;
        f?: number;
        s?: Uint8Array;
        ints?: number[];
        floats?: number[];
        strings?: Uint8Array[];
      }[];
    }[];
    initializer?: { name: string; dims?: number[]; dataType: number; rawData?: Uint8Array }[];
    input?: DecodedValueInfo[];
    output?: DecodedValueInfo[];
  };
}

function decodeAttribute(
  a: NonNullable<NonNullable<DecodedModel['graph']>['node']>[number]['attribute'],
): Record<string, OnnxAttribute> {
  const out: Record<string, OnnxAttribute> = {};
  for (const x of a ?? []) {
    if (x.type === ATTRIBUTE_TYPE.int) out[x.name] = attr.int(x.i ?? 0);
    else if (x.type === ATTRIBUTE_TYPE.ints) out[x.name] = attr.ints(x.ints ?? []);
    else if (x.type === ATTRIBUTE_TYPE.float) out[x.name] = attr.float(x.f ?? 0);
    else if (x.type === ATTRIBUTE_TYPE.floats) out[x.name] = attr.floats(x.floats ?? []);
    else if (x.type === ATTRIBUTE_TYPE.string)
      out[x.name] = attr.string(new TextDecoder().decode(x.s ?? new Uint8Array()));
    else if (x.type === ATTRIBUTE_TYPE.strings)
      out[x.name] = attr.strings((x.strings ?? []).map((v) => new TextDecoder().decode(v)));
  }
  return out;
}

function decodeValueInfo(v: DecodedValueInfo): OnnxValueInfo {
  const t = v.type?.tensorType;
  return {
    name: v.name,
    elemType: t?.elemType === DATA_TYPE.int64 ? 'int64' : 'float',
    shape: (t?.shape?.dim ?? []).map((d) => d.dimParam ?? d.dimValue ?? 0),
  };
}

/** Parse ModelProto bytes written by `encodeModel` (for tests and inspection). */
export function decodeModel(
  bytes: Uint8Array,
): OnnxGraph & { opset: number; metadata: Record<string, string> } {
  const model = ModelProto.toObject(ModelProto.decode(bytes), {
    longs: Number,
    bytes: Uint8Array,
    defaults: false,
  }) as DecodedModel;
  const g = model.graph ?? {};
  return {
    name: g.name ?? '',
    opset: model.opsetImport?.[0]?.version ?? 0,
    metadata: Object.fromEntries((model.metadataProps ?? []).map((p) => [p.key, p.value])),
    nodes: (g.node ?? []).map((n) => ({
      op: n.opType,
      inputs: n.input ?? [],
      outputs: n.output ?? [],
      name: n.name,
      ...(n.domain ? { domain: n.domain } : {}),
      attributes: decodeAttribute(n.attribute),
    })),
    initializers: (g.initializer ?? []).map((t) => {
      const raw = t.rawData ?? new Uint8Array();
      // Copy: protobufjs hands out Buffer views into a shared pool.
      const copy = new Uint8Array(raw).buffer;
      return {
        name: t.name,
        dims: t.dims ?? [],
        data:
          t.dataType === DATA_TYPE.int64
            ? new BigInt64Array(copy)
            : t.dataType === DATA_TYPE.double
              ? new Float64Array(copy)
              : t.dataType === DATA_TYPE.int32
                ? new Int32Array(copy)
                : new Float32Array(copy),
      };
    }),
    inputs: (g.input ?? []).map(decodeValueInfo),
    outputs: (g.output ?? []).map(decodeValueInfo),
  };
}
