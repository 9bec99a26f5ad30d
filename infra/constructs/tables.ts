import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { tableKeys } from '../../lambdas/manifest.ts';

export type TableName = keyof typeof tableKeys;

interface KeySpec {
  readonly partitionKey: string;
  readonly sortKey?: string;
  readonly sortKeyType?: 'string' | 'number';
}

/** One on-demand, encrypted, point-in-time-recoverable, retained table per `tableKeys` entry. */
export class EsmTables extends Construct {
  readonly tables: Record<TableName, Table>;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const entries = Object.entries(tableKeys) as [TableName, KeySpec][];
    this.tables = Object.fromEntries(
      entries.map(([name, keys]) => [name, this.table(name, keys)]),
    ) as Record<TableName, Table>;
  }

  private table(name: TableName, keys: KeySpec): Table {
    const id = name.charAt(0).toUpperCase() + name.slice(1);
    return new Table(this, id, {
      partitionKey: { name: keys.partitionKey, type: AttributeType.STRING },
      sortKey:
        keys.sortKey === undefined
          ? undefined
          : {
              name: keys.sortKey,
              type: keys.sortKeyType === 'number' ? AttributeType.NUMBER : AttributeType.STRING,
            },
      billingMode: BillingMode.PAY_PER_REQUEST,
      encryption: TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
