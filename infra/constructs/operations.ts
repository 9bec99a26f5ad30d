import { Duration, Stack } from 'aws-cdk-lib';
import type { RestApi } from 'aws-cdk-lib/aws-apigateway';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  MathExpression,
  Metric,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

/** Namespace and name of the per-device measurement metric (device-fleet.ts writes it). */
export const deviceMetrics = { namespace: 'ESM/Devices', jobSeconds: 'JobSeconds' } as const;

export interface OperationsProps {
  readonly stateMachine: IStateMachine;
  /** One Lambda invocation per ESM iteration. */
  readonly trainFunction: IFunction;
  /** Functions whose errors lose device data (the IoT rule targets). */
  readonly ingestFunctions: readonly IFunction[];
  readonly api: RestApi;
  readonly deadLetters: IQueue;
}

/**
 * What an operator watches: a CloudWatch dashboard (runs, iterations, measurement time per
 * device, failures) and an SNS topic that every alarm of the stack notifies; subscribe an
 * e-mail address, a chat webhook or a pager to the `AlarmTopicArn` output.
 */
export class Operations extends Construct {
  readonly topic: Topic;
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: OperationsProps) {
    super(scope, id);
    // Alarm notifications carry no data beyond alarm names and states.
    this.topic = new Topic(this, 'Alarms', {
      displayName: 'ESM platform alarms',
      enforceSSL: true,
    });
    NagSuppressions.addResourceSuppressions(this.topic, [
      {
        id: 'AwsSolutions-SNS2',
        reason:
          'Alarm notifications hold only alarm names and states; CloudWatch cannot publish to a ' +
          'topic under the AWS managed SNS key, and a customer key would cost more than the data is worth.',
      },
    ]);
    const hour = Duration.hours(1);
    const sfn = (metricName: string, label: string) =>
      new Metric({
        namespace: 'AWS/States',
        metricName,
        dimensionsMap: { StateMachineArn: props.stateMachine.stateMachineArn },
        statistic: 'Sum',
        period: hour,
        label,
      });
    const api5xx = props.api.metricServerError({ period: Duration.minutes(5), statistic: 'Sum' });
    const ingestErrors = new MathExpression({
      expression: props.ingestFunctions.map((_, i) => `e${i}`).join(' + '),
      usingMetrics: Object.fromEntries(
        props.ingestFunctions.map((fn, i) => [
          `e${i}`,
          fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
        ]),
      ),
      label: 'ingestion errors',
      period: Duration.minutes(5),
    });
    new Alarm(this, 'ApiErrorsAlarm', {
      alarmDescription: 'The ESM API answered 5xx (handler errors): see the functions’ logs',
      metric: api5xx,
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    new Alarm(this, 'IngestErrorsAlarm', {
      alarmDescription: 'Device results or status failed to record (Lambda retries, then the DLQ)',
      metric: ingestErrors,
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });

    const perDevice = new MathExpression({
      expression: `SEARCH('{${deviceMetrics.namespace},Thing} MetricName="${deviceMetrics.jobSeconds}"', 'Average', 300)`,
      label: 'seconds per job',
      period: Duration.minutes(5),
    });
    this.dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: `${Stack.of(this).stackName}-esm`,
      defaultInterval: Duration.days(1),
    });
    this.dashboard.addWidgets(
      new TextWidget({
        markdown:
          '# ESM platform\nRuns (Step Functions executions), iterations (one training per ' +
          'iteration), the time each device takes per measurement job, and failures. Alarms ' +
          'notify the SNS topic of the `AlarmTopicArn` output.',
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Runs',
        left: [
          sfn('ExecutionsStarted', 'started'),
          sfn('ExecutionsSucceeded', 'succeeded'),
          sfn('ExecutionsFailed', 'failed'),
          sfn('ExecutionsTimedOut', 'timed out'),
        ],
        width: 8,
      }),
      new GraphWidget({
        title: 'Iterations (trainings)',
        left: [props.trainFunction.metricInvocations({ period: hour, label: 'iterations' })],
        right: [
          props.trainFunction.metricDuration({
            period: hour,
            statistic: 'Maximum',
            label: 'longest training (ms)',
          }),
        ],
        width: 8,
      }),
      new GraphWidget({
        title: 'Measurement time per device (s per job)',
        left: [perDevice],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Failures',
        left: [
          sfn('ExecutionsFailed', 'failed runs'),
          api5xx.with({ label: 'API 5xx' }),
          ingestErrors,
          props.deadLetters.metricApproximateNumberOfMessagesVisible({
            label: 'dead letters',
            period: Duration.minutes(5),
          }),
        ],
        width: 24,
      }),
    );
  }

  /** Makes every alarm in `scope` (the whole stack) notify the topic. */
  notifyAll(scope: Construct): void {
    for (const child of scope.node.findAll()) {
      if (child instanceof Alarm) child.addAlarmAction(new SnsAction(this.topic));
    }
  }
}
