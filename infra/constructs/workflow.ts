import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import { ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { DefinitionBody, LogLevel, StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import {
  buildDefinition,
  type WorkflowTask,
  workflowTasks,
} from '../../lambdas/workflow/definition.ts';

export interface WorkflowProps {
  /** The Lambda of each Task state of the ESM loop. */
  readonly tasks: Record<WorkflowTask, IFunction>;
}

/**
 * The ESM loop as a Step Functions state machine. The definition is the same ASL module that
 * `esm run` (local/engine.ts) and the tests execute (lambdas/workflow/definition.ts); here it only receives the
 * deployed functions' ARNs.
 */
export class Workflow extends Construct {
  readonly stateMachine: StateMachine;

  constructor(scope: Construct, id: string, props: WorkflowProps) {
    super(scope, id);
    const arns = Object.fromEntries(
      workflowTasks.map((task) => [task, props.tasks[task].functionArn]),
    ) as Record<WorkflowTask, string>;
    // The vendedlogs prefix keeps the log delivery resource policy small (Step Functions docs).
    const logGroup = new LogGroup(this, 'Logs', {
      logGroupName: `/aws/vendedlogs/states/${Stack.of(this).stackName}-esm`,
      retention: RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new StateMachine(this, 'StateMachine', {
      comment: 'ESM loop: initialise, sample, measure on the device, train, evaluate, extend',
      definitionBody: DefinitionBody.fromString(Stack.of(this).toJsonString(buildDefinition(arns))),
      tracingEnabled: true,
      logs: { destination: logGroup, level: LogLevel.ALL, includeExecutionData: true },
    });
    for (const fn of Object.values(props.tasks) as IFunction[]) fn.grantInvoke(this.stateMachine);
    this.stateMachine.metricFailed().createAlarm(this, 'FailedRunsAlarm', {
      alarmDescription: 'An ESM run failed; GET /runs/{id} holds the error',
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    NagSuppressions.addResourceSuppressions(
      this.stateMachine,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Log delivery and X-Ray actions support no resource scoping; lambda:InvokeFunction ' +
            'is granted on the task functions and their versions (ARN:*).',
          appliesTo: ['Resource::*', { regex: '/^Resource::<.*Arn>:\\*$/g' }],
        },
      ],
      true,
    );
  }
}
