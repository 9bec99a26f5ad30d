/**
 * The durable outbox: results on disk until acknowledged, re-sent after a failed delivery and
 * after a restart, then kept in a bounded `sent` ledger. `send` stands for the broker: it
 * resolves (PUBACK) or rejects (not delivered) as each test decides.
 */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ResultMessage } from '../../core/schemas/protocol.ts';
import { createOutbox } from '../../device-client/outbox.ts';

/** A schema-valid result of thing `t`. */
function result(batchId: string, thing = 't'): ResultMessage {
  const stats = { median_ms: 1, mean_ms: 1, std_ms: 0, min_ms: 1, max_ms: 1, runs: 3 };
  return {
    v: 1,
    type: 'result',
    runId: 'run-1',
    batchId,
    thing,
    samples: [{ id: `${batchId}-s0`, stats }],
    references: [],
    quality: { maxDrift: 0, unstable: false },
    device: {
      thing,
      cpu: 'cpu',
      cores: 1,
      accelerator: null,
      os: 'os',
      node: 'v20',
      onnxruntime: '1.30.0',
      executionProvider: 'cpu',
    },
    settings: {
      warmup: 1,
      runs: 3,
      threads: 1,
      batchSize: 1,
      referenceEvery: 0,
      maxReferenceDrift: 1,
    },
    startedAt: '2026-12-01T00:00:00.000Z',
    finishedAt: '2026-12-01T00:00:01.000Z',
  };
}

/** A broker stand-in whose answer to each delivery the test controls. */
function broker() {
  const sent: string[] = [];
  let accept = true;
  return {
    sent,
    set accept(value: boolean) {
      accept = value;
    },
    send: async (r: ResultMessage) => {
      sent.push(r.batchId);
      if (!accept) throw new Error('connection lost');
    },
  };
}

const settle = () => new Promise((r) => setTimeout(r, 10));

describe('outbox', () => {
  it('keeps a result on disk until acknowledged, then moves it to the sent ledger', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'esm-outbox-'));
    const b = broker();
    const outbox = createOutbox({ dir, thing: 't', send: b.send });
    b.accept = false;
    outbox.add(result('r1'));
    await settle();
    expect(outbox.pending).toBe(1);
    expect(readdirSync(join(dir, 'outbox'))).toHaveLength(1);

    b.accept = true;
    outbox.flush(); // after the reconnect
    expect(await outbox.settled(1000)).toBe(0);
    expect(b.sent).toEqual(['r1', 'r1']);
    expect(readdirSync(join(dir, 'outbox'))).toEqual([]);
    expect(readdirSync(join(dir, 'sent'))).toHaveLength(1);
  });

  it('restores unsent and sent results in a new process, ignoring other things', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'esm-outbox-'));
    const first = broker();
    const before = createOutbox({ dir, thing: 't', send: first.send });
    before.add(result('done'));
    await before.settled(1000);
    first.accept = false;
    before.add(result('unsent'));
    await settle();
    writeFileSync(join(dir, 'outbox', 'other.json'), JSON.stringify(result('x', 'other-thing')));

    const second = broker();
    const after = createOutbox({ dir, thing: 't', send: second.send });
    expect(after.restored.pending.map((r) => r.batchId)).toEqual(['unsent']);
    expect(after.restored.sent.map((r) => r.batchId)).toEqual(['done']);
    expect(after.pending).toBe(1);
    after.flush();
    expect(await after.settled(1000)).toBe(0);
    expect(second.sent).toEqual(['unsent']);
  });

  it('keeps only the newest acknowledged results', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'esm-outbox-'));
    const b = broker();
    const outbox = createOutbox({ dir, thing: 't', send: b.send, keepSent: 2 });
    for (const id of ['a', 'b', 'c']) {
      outbox.add(result(id));
      await outbox.settled(1000);
    }
    const restored = createOutbox({ dir, thing: 't', send: b.send }).restored.sent;
    expect(restored.map((r) => r.batchId)).toEqual(['b', 'c']);
  });

  it('resends a finished result without keeping a second copy', async () => {
    const b = broker();
    const outbox = createOutbox({ thing: 't', send: b.send });
    outbox.add(result('r'));
    await outbox.settled(1000);
    outbox.resend(result('r'));
    await settle();
    expect(b.sent).toEqual(['r', 'r']);
    expect(outbox.pending).toBe(0);
  });
});
