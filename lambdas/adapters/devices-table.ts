/**
 * Registered devices in DynamoDB (`devicesTable`, key `thing`). Registration first claims the
 * thing name with a conditional write, so two concurrent registrations of one name cannot
 * both succeed; the claim becomes the device record once the IoT identity exists, or is
 * released if creating it failed. Certificates' private keys are never stored.
 */
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { type DeviceFacts, type StatusMessage, thingName } from '../../core/schemas/protocol.ts';
import { decodeCursor, encodeCursor } from './dynamo.ts';
import { documentClient } from './run-state.ts';

export interface DeviceRecord {
  readonly thing: string;
  readonly status: 'registering' | 'registered';
  readonly description?: string;
  readonly thingArn?: string;
  readonly certificateId?: string;
  readonly certificateArn?: string;
  readonly createdAt: string;
  readonly registeredAt?: string;
  /** When the certificate was last rotated. */
  readonly rotatedAt?: string;
  /** Last state the device reported on its status topic, and when (the message's `at`). */
  readonly state?: StatusMessage['state'];
  readonly lastSeenAt?: string;
  readonly facts?: DeviceFacts;
  readonly lastError?: NonNullable<StatusMessage['error']>;
}

export interface DevicesTableOptions {
  readonly tableName: string;
  /** @default the module-level client of lambdas/adapters/run-state.ts */
  readonly client?: DynamoDBDocumentClient;
  /** @default () => new Date() */
  readonly now?: () => Date;
}

export interface DevicePage {
  readonly devices: DeviceRecord[];
  /** Pass as `cursor` to get the next page; absent on the last page. */
  readonly next?: string;
}

export interface DevicesTable {
  /** @returns false when the thing name is taken. */
  claim(thing: string, description?: string): Promise<boolean>;
  complete(
    thing: string,
    identity: Pick<DeviceRecord, 'thingArn' | 'certificateId' | 'certificateArn'>,
  ): Promise<DeviceRecord>;
  release(thing: string): Promise<void>;
  /** The device record, or undefined. */
  get(thing: string): Promise<DeviceRecord | undefined>;
  /** Points a registered device's record at its new certificate (rotation). */
  setCertificate(
    thing: string,
    certificate: Pick<DeviceRecord, 'certificateId' | 'certificateArn'>,
  ): Promise<DeviceRecord>;
  /** Deletes the device's record. @returns false when there was none. */
  remove(thing: string): Promise<boolean>;
  /**
   * Records a status message on the device's record. Out-of-order and repeated deliveries
   * (QoS 1, retained messages) never move the state back: only a newer `at` is written.
   * @returns 'recorded', 'stale' (an older or equal `at`), or 'unknown' (no such device).
   */
  recordStatus(status: StatusMessage): Promise<'recorded' | 'stale' | 'unknown'>;
  /**
   * @param options.limit devices per page; @default 100
   * @param options.cursor `next` of the previous page
   */
  list(options?: { limit?: number; cursor?: string }): Promise<DevicePage>;
}

function isConditionFailure(error: unknown): boolean {
  return (error as { name?: string }).name === 'ConditionalCheckFailedException';
}

export function createDevicesTable(options: DevicesTableOptions): DevicesTable {
  const client = options.client ?? documentClient();
  const now = options.now ?? (() => new Date());
  const TableName = options.tableName;

  return {
    async claim(thing, description) {
      const record: DeviceRecord = {
        thing,
        status: 'registering',
        createdAt: now().toISOString(),
        ...(description === undefined ? {} : { description }),
      };
      try {
        await client.send(
          new PutCommand({
            TableName,
            Item: record,
            ConditionExpression: 'attribute_not_exists(thing)',
          }),
        );
        return true;
      } catch (error) {
        if (isConditionFailure(error)) return false;
        throw error;
      }
    },

    async complete(thing, identity) {
      const result = await client.send(
        new UpdateCommand({
          TableName,
          Key: { thing },
          ConditionExpression: '#status = :registering',
          UpdateExpression:
            'SET #status = :registered, thingArn = :thingArn, certificateId = :certificateId, ' +
            'certificateArn = :certificateArn, registeredAt = :at',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':registering': 'registering',
            ':registered': 'registered',
            ':thingArn': identity.thingArn,
            ':certificateId': identity.certificateId,
            ':certificateArn': identity.certificateArn,
            ':at': now().toISOString(),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return result.Attributes as DeviceRecord;
    },

    async release(thing) {
      await client
        .send(
          new DeleteCommand({
            TableName,
            Key: { thing },
            ConditionExpression: '#status = :registering',
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: { ':registering': 'registering' },
          }),
        )
        .catch((error: unknown) => {
          if (!isConditionFailure(error)) throw error;
        });
    },

    async get(thing) {
      const out = await client.send(new GetCommand({ TableName, Key: { thing } }));
      return out.Item as DeviceRecord | undefined;
    },

    async setCertificate(thing, certificate) {
      const result = await client.send(
        new UpdateCommand({
          TableName,
          Key: { thing },
          ConditionExpression: 'attribute_exists(thing)',
          UpdateExpression:
            'SET certificateId = :certificateId, certificateArn = :certificateArn, rotatedAt = :at',
          ExpressionAttributeValues: {
            ':certificateId': certificate.certificateId,
            ':certificateArn': certificate.certificateArn,
            ':at': now().toISOString(),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return result.Attributes as DeviceRecord;
    },

    async remove(thing) {
      const out = await client.send(
        new DeleteCommand({ TableName, Key: { thing }, ReturnValues: 'ALL_OLD' }),
      );
      return out.Attributes !== undefined;
    },

    async recordStatus(status) {
      const values: Record<string, unknown> = { ':state': status.state, ':at': status.at };
      const sets = ['#state = :state', 'lastSeenAt = :at'];
      if (status.device !== undefined) {
        sets.push('facts = :facts');
        values[':facts'] = status.device;
      }
      if (status.error !== undefined) {
        sets.push('lastError = :error');
        values[':error'] = status.error;
      }
      try {
        await client.send(
          new UpdateCommand({
            TableName,
            Key: { thing: status.thing },
            ConditionExpression:
              'attribute_exists(thing) AND (attribute_not_exists(lastSeenAt) OR lastSeenAt < :at)',
            UpdateExpression: `SET ${sets.join(', ')}`,
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: values,
          }),
        );
        return 'recorded';
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      const existing = await client.send(
        new GetCommand({ TableName, Key: { thing: status.thing }, ProjectionExpression: 'thing' }),
      );
      return existing.Item === undefined ? 'unknown' : 'stale';
    },

    async list({ limit = 100, cursor } = {}) {
      const result = await client.send(
        new ScanCommand({
          TableName,
          Limit: limit,
          ExclusiveStartKey:
            cursor === undefined
              ? undefined
              : decodeCursor(cursor, 'thing', (v) => thingName.safeParse(v).success),
        }),
      );
      const devices = ((result.Items ?? []) as DeviceRecord[]).sort((a, b) =>
        a.thing.localeCompare(b.thing),
      );
      const last = result.LastEvaluatedKey;
      return last === undefined ? { devices } : { devices, next: encodeCursor(last) };
    },
  };
}
