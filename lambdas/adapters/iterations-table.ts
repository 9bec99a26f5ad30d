/** The iterations table: one item per (runId, iteration); a retried train task overwrites its own. */
import { type DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { StoredIteration } from '../../core/schemas/run.ts';
import { queryAll } from './dynamo.ts';

export interface IterationsTable {
  put(record: StoredIteration): Promise<void>;
  list(runId: string): Promise<StoredIteration[]>;
}

export function createIterationsTable(
  db: DynamoDBDocumentClient,
  tableName: () => string,
): IterationsTable {
  return {
    async put(record) {
      await db.send(new PutCommand({ TableName: tableName(), Item: record }));
    },
    async list(runId) {
      const items = await queryAll(db, {
        TableName: tableName(),
        KeyConditionExpression: 'runId = :r',
        ExpressionAttributeValues: { ':r': runId },
        ConsistentRead: true,
      });
      return items as unknown as StoredIteration[];
    },
  };
}
