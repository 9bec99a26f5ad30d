/**
 * Decoding of an incoming job payload, with the error the protocol promises for each way it can
 * be wrong (docs/protocol.md, "Error codes"): the status names the first bad field.
 */
import {
  type JobMessage,
  jobMessage,
  PROTOCOL_VERSION,
  type StatusErrorCode,
} from '../core/schemas/protocol.ts';

function stringField(value: unknown, key: string): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const field = (value as Record<string, unknown>)[key];
  return typeof field === 'string' ? field : undefined;
}

/** Check an incoming payload; the error names the first bad field, as the protocol promises. */
export function decodeJob(
  payload: Buffer | string,
): { job: JobMessage } | { code: StatusErrorCode; message: string; batchId?: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(payload.toString());
  } catch (error) {
    return { code: 'MALFORMED_JSON', message: `job is not JSON: ${(error as Error).message}` };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { code: 'INVALID_JOB', message: 'job: must be a JSON object (see docs/protocol.md)' };
  }
  const batchId = stringField(raw, 'batchId');
  const withBatch = batchId === undefined ? {} : { batchId };
  const { v } = raw as { v?: unknown };
  if (v === undefined) {
    return {
      code: 'INVALID_JOB',
      message: `v: missing; this device speaks protocol version ${PROTOCOL_VERSION}`,
      ...withBatch,
    };
  }
  if (v !== PROTOCOL_VERSION) {
    return {
      code: 'UNSUPPORTED_VERSION',
      message: `v: this device speaks protocol version ${PROTOCOL_VERSION}, the job has ${JSON.stringify(v)}`,
      ...withBatch,
    };
  }
  const parsed = jobMessage.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || 'job';
    return {
      code: 'INVALID_JOB',
      message: `${field}: ${issue?.message ?? 'invalid job'}`,
      ...withBatch,
    };
  }
  return { job: parsed.data };
}
