import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { type FunctionName, type FunctionSpec, functions } from '../lambdas/manifest.ts';
import { type WorkflowTask, workflowTasks } from '../lambdas/workflow/definition.ts';
import { DeviceFleet } from './constructs/device-fleet.ts';
import { EsmApi } from './constructs/esm-api.ts';
import type { CodeOptions } from './constructs/lambda-code.ts';
import { ManifestFunctions } from './constructs/manifest-functions.ts';
import type { TableName } from './constructs/tables.ts';
import { Workflow } from './constructs/workflow.ts';

export interface StatelessStackProps extends StackProps {
  readonly bucket: IBucket;
  readonly tables: Record<TableName, ITable>;
  readonly code: CodeOptions;
  /** The account's IoT data endpoint (ATS); looked up at deploy time when absent. */
  readonly iotDataEndpoint?: string;
}

/** Functions, the ESM state machine, IoT (thing type, device policy, rules) and the API. */
export class StatelessStack extends Stack {
  readonly functions: ManifestFunctions;
  readonly fleet: DeviceFleet;
  readonly workflow: Workflow;
  readonly api: EsmApi;

  constructor(scope: Construct, id: string, props: StatelessStackProps) {
    super(scope, id, props);
    this.fleet = new DeviceFleet(this, 'Devices', { dataEndpoint: props.iotDataEndpoint });
    this.functions = new ManifestFunctions(this, 'Functions', { code: props.code });
    const fns = this.functions.functions;

    const tasks = Object.fromEntries(
      workflowTasks.map((task) => {
        const fn = (fns as Partial<Record<string, IFunction>>)[task];
        if (fn === undefined) {
          throw new Error(`workflow task '${task}' has no function in lambdas/manifest.ts`);
        }
        return [task, fn];
      }),
    ) as Record<WorkflowTask, IFunction>;
    this.workflow = new Workflow(this, 'Workflow', { tasks });
    this.fleet.routeResults(fns.ingestResults);
    this.fleet.routeStatus(fns.ingestStatus);

    const bind = this.functions.bindEnv.bind(this.functions);
    bind('bucket', props.bucket.bucketName);
    for (const name of Object.keys(props.tables) as TableName[]) {
      bind(name, props.tables[name].tableName);
    }
    bind('stateMachineArn', this.workflow.stateMachine.stateMachineArn);
    bind('iotDataEndpoint', this.fleet.dataEndpoint);
    bind('thingType', this.fleet.thingTypeName);
    bind('devicePolicy', this.fleet.policyName);
    this.functions.grantAccess({
      bucket: props.bucket,
      tables: props.tables,
      stateMachine: this.workflow.stateMachine,
    });

    const routes = (Object.entries(functions) as [FunctionName, FunctionSpec][]).flatMap(
      ([name, spec]) =>
        spec.route === undefined ? [] : [{ route: spec.route, handler: fns[name] }],
    );
    this.api = new EsmApi(this, 'Api', { routes });

    new CfnOutput(this, 'ApiUrl', { value: this.api.url });
    new CfnOutput(this, 'ApiInvokeArn', { value: this.api.invokeArn() });
    new CfnOutput(this, 'IotDataEndpoint', { value: this.fleet.dataEndpoint });
    new CfnOutput(this, 'DevicePolicyName', { value: this.fleet.policyName });
    new CfnOutput(this, 'StateMachineArn', { value: this.workflow.stateMachine.stateMachineArn });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.fleet.deadLetters.queueUrl });
  }
}
