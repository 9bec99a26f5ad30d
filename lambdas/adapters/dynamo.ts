/**
 * What the DynamoDB repositories share: the module-level document client, conditional-write
 * failure detection and paginated queries.
 */
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  QueryCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { ValidationError } from '../../core/errors.ts';

let sharedClient: DynamoDBDocumentClient | undefined;

/** One client per container: SDK clients are expensive to build and safe to reuse. */
export function documentClient(): DynamoDBDocumentClient {
  sharedClient ??= DynamoDBDocumentClient.from(new DynamoDBClient({}), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
  return sharedClient;
}

export function isConditionFailure(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  return (
    error instanceof ConditionalCheckFailedException || name === 'ConditionalCheckFailedException'
  );
}

/** Every item of a query, following `LastEvaluatedKey`. */
export async function queryAll(
  db: DynamoDBDocumentClient,
  input: QueryCommandInput,
): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await db.send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
    items.push(...((page.Items ?? []) as Record<string, unknown>[]));
    start = page.LastEvaluatedKey;
  } while (start !== undefined);
  return items;
}

/** `SET #f0 = :v0, ...` for the defined fields of `patch`. */
export function setExpression(patch: Record<string, unknown>): {
  expression: string;
  names: Record<string, string>;
  values: Record<string, unknown>;
} {
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  const sets = Object.entries(patch)
    .filter(([, v]) => v !== undefined)
    .map(([k, v], i) => {
      names[`#f${i}`] = k;
      values[`:v${i}`] = v;
      return `#f${i} = :v${i}`;
    });
  return { expression: `SET ${sets.join(', ')}`, names, values };
}

/** The `next` of a page: the scan's `LastEvaluatedKey`, opaque to the caller. */
export function encodeCursor(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/**
 * The `ExclusiveStartKey` of a `cursor` from `encodeCursor`: only a key the table could have
 * returned, its one attribute `name` with a value `valid` accepts (real DynamoDB answers a
 * 500-level ValidationException to an empty or oversized key).
 */
export function decodeCursor(
  cursor: string,
  name: string,
  valid: (value: unknown) => boolean,
): Record<string, string> {
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    const value = (key as Record<string, unknown> | null)?.[name];
    if (typeof key === 'object' && key !== null && Object.keys(key).length === 1 && valid(value)) {
      return { [name]: value as string };
    }
  } catch {
    // Reported below.
  }
  throw new ValidationError(
    'query.cursor',
    'is not a cursor this API returned; use the `next` value of the previous page',
  );
}
