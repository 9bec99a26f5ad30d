/**
 * What the daemon's durability costs per job: journaling a job before its PUBACK and moving its
 * result through the outbox (each write flushed with fsync), against memory only.
 *
 *   npx tsx scripts/bench/journal.ts [--jobs 200] [--samples 50] [--dir /var/tmp]
 *
 * Prints CPU and wall milliseconds per job (median of 5 rounds) and the load average.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResultMessage } from '../../core/schemas/protocol.ts';
import { createJobQueue, fileJournal, memoryJournal } from '../../device-client/job-queue.ts';
import { createOutbox } from '../../device-client/outbox.ts';
import { tinyJob } from '../../test/support/mqtt.ts';

const arg = (name: string, fallback: number | string) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
};
const jobs = Number(arg('jobs', 200));
const samples = Number(arg('samples', 50));
const base = String(arg('dir', tmpdir()));

function resultOf(job: ReturnType<typeof tinyJob>): ResultMessage {
  const stats = { median_ms: 1, mean_ms: 1, std_ms: 0, min_ms: 1, max_ms: 1, runs: 30 };
  return {
    v: 1,
    type: 'result',
    runId: job.runId,
    batchId: job.batchId,
    thing: 't',
    samples: job.samples.map((s) => ({ id: s.id, stats })),
    references: [],
    quality: { maxDrift: 0, unstable: false },
    device: {
      thing: 't',
      cpu: 'cpu',
      cores: 1,
      accelerator: null,
      os: 'os',
      node: process.version,
      onnxruntime: '1.30.0',
      executionProvider: 'cpu',
    },
    settings: job.settings,
    startedAt: new Date().toISOString(),
    finishedAt: new Date().toISOString(),
  };
}

async function round(durable: boolean): Promise<{ cpuMs: number; wallMs: number }> {
  const dir = mkdtempSync(join(base, 'esm-journal-bench-'));
  const queue = createJobQueue({
    limit: jobs,
    journal: durable ? fileJournal(join(dir, 'jobs')) : memoryJournal(),
  });
  const outbox = createOutbox({ ...(durable ? { dir } : {}), thing: 't', send: async () => {} });
  const all = Array.from({ length: jobs }, (_, i) => tinyJob(`b-${i}`, { samples }));
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (const job of all) {
    queue.offer(job);
    const taken = queue.take() as (typeof all)[number];
    const result = resultOf(taken);
    outbox.add(result);
    queue.settle(taken, { result });
    await outbox.settled(10_000);
  }
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  rmSync(dir, { recursive: true, force: true });
  return { cpuMs: (used.user + used.system) / 1000, wallMs };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
for (const durable of [false, true]) {
  const rounds = [];
  for (let r = 0; r < 5; r++) rounds.push(await round(durable));
  console.log(
    `${durable ? 'journal + outbox on disk' : 'memory only'}: ${jobs} jobs of ${samples} samples, ` +
      `CPU ${(median(rounds.map((r) => r.cpuMs)) / jobs).toFixed(3)} ms/job, ` +
      `wall ${(median(rounds.map((r) => r.wallMs)) / jobs).toFixed(3)} ms/job (median of 5)`,
  );
}
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}; dir ${base}`,
);
