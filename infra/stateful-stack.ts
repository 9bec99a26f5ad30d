import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import type { Bucket } from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { ArtifactBucket } from './constructs/artifact-bucket.ts';
import { EsmTables, type TableName } from './constructs/tables.ts';

/**
 * Everything that holds data: the artifact bucket and the DynamoDB tables. Kept apart from
 * the stateless stack so that redeploying or deleting functions never touches data.
 */
export class StatefulStack extends Stack {
  readonly bucket: Bucket;
  readonly tables: Record<TableName, Table>;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    this.bucket = new ArtifactBucket(this, 'Storage').bucket;
    this.tables = new EsmTables(this, 'Tables').tables;
    // Where a replay's pool is uploaded (`"pool": "KEY"` of POST /runs, docs/cloud.md).
    new CfnOutput(this, 'ArtifactBucketName', { value: this.bucket.bucketName });
  }
}
