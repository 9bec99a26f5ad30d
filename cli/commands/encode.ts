/** `esm encode`: encoded vectors of architectures, one JSON line `{"vector": [...]}` each. */
import type { Command } from 'commander';
import { createEncoder, type EncodingName, encodingNames } from '../../core/encodings/index.ts';
import { archRow, archRowLayout } from '../../core/onnx/arch-graph-layout.ts';
import { parse, readArchLines, resolveSpace } from '../common.ts';

interface EncodeFlags {
  space: string;
  encoding: EncodingName;
  in?: string;
  labels?: boolean;
  archTensor?: boolean;
}

async function encode(flags: EncodeFlags): Promise<void> {
  const space = await resolveSpace(flags.space);
  if (flags.archTensor) return archRows(space, flags);
  const encoder = createEncoder(space, flags.encoding);
  if (flags.labels) {
    const { name, length, labels } = encoder;
    process.stdout.write(
      `${JSON.stringify({ space: space.name, encoding: name, length, labels })}\n`,
    );
    return;
  }
  const out: string[] = [];
  for (const subnet of await readArchLines(space, flags.in)) {
    out.push(`{"vector":${JSON.stringify(Array.from(encoder.encode(subnet)))}}\n`);
  }
  process.stdout.write(out.join(''));
}

/** The rows predictor-arch.onnx takes (docs/predictor.md), or their layout with --labels. */
async function archRows(space: Awaited<ReturnType<typeof resolveSpace>>, flags: EncodeFlags) {
  const layout = archRowLayout(space);
  if (flags.labels) {
    const labels = layout.entries.map((e) => e.label);
    process.stdout.write(
      `${JSON.stringify({ space: space.name, input: 'arch', length: layout.length, labels })}\n`,
    );
    return;
  }
  const out: string[] = [];
  for (const subnet of await readArchLines(space, flags.in)) {
    out.push(`{"row":${JSON.stringify(archRow(space, subnet))}}\n`);
  }
  process.stdout.write(out.join(''));
}

export function register(program: Command): void {
  program
    .command('encode')
    .description('encode archs (or dataset lines) into vectors; prints JSONL {"vector": [...]}')
    .requiredOption('--space <name|spec.json>', 'space name (see `esm spaces`) or a spec file')
    .option(
      '--encoding <name>',
      `one of ${encodingNames.join(', ')} (layouts: docs/encodings.md)`,
      parse.oneOf(encodingNames),
      'fcc' as EncodingName,
    )
    .option('--in <file>', 'JSONL of native archs or dataset lines (default: stdin)')
    .option('--labels', 'print the name of every vector entry instead of encoding input')
    .option(
      '--arch-tensor',
      'print the int64 rows predictor-arch.onnx takes, {"row": [...]} (--encoding is ignored)',
    )
    .action(encode);
}
