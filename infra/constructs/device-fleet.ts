import { CustomResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { ComparisonOperator, TreatMissingData, Unit } from 'aws-cdk-lib/aws-cloudwatch';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { CfnPolicy, CfnThingType, CfnTopicRule } from 'aws-cdk-lib/aws-iot';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import { FilterPattern, LogGroup, MetricFilter, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import {
  AwsCustomResource,
  AwsCustomResourcePolicy,
  PhysicalResourceId,
} from 'aws-cdk-lib/custom-resources';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { topics } from '../../core/schemas/protocol.ts';
import { resultsTopicFilter, statusTopicFilter } from '../../lambdas/manifest.ts';
import { deviceMetrics } from './operations.ts';

/** IoT policy variable: the thing the connecting certificate is attached to. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: an IoT policy variable, resolved by IoT Core
export const THING_VARIABLE = '${iot:Connection.Thing.ThingName}';

/** The jobs topics of every device: the only topics the platform publishes to. */
export function jobsTopicArn(stack: Stack): string {
  return stack.formatArn({ service: 'iot', resource: `topic/${topics.jobs('*')}` });
}

export interface DeviceFleetProps {
  /**
   * The account's IoT data endpoint (ATS). When absent it is looked up at deploy time with
   * `iot:DescribeEndpoint` by a custom resource.
   */
  readonly dataEndpoint?: string;
}

/**
 * The IoT side of the device protocol: a thing type for measurement devices, the device
 * policy that confines every device to its own topics, the account's data endpoint, and the
 * topic rules that hand results and state changes to their Lambdas.
 */
export class DeviceFleet extends Construct {
  readonly thingTypeName: string;
  readonly policyName: string;
  readonly dataEndpoint: string;
  /** Where results that the rule could not deliver end up (14 days). */
  readonly deadLetters: Queue;
  private errorRole?: Role;

  constructor(scope: Construct, id: string, props: DeviceFleetProps = {}) {
    super(scope, id);
    const thingType = new CfnThingType(this, 'ThingType', {
      thingTypeProperties: {
        thingTypeDescription: 'ESM measurement device (GPU server, Raspberry Pi, ...)',
      },
    });
    this.thingTypeName = thingType.ref;
    const policy = new CfnPolicy(this, 'DevicePolicy', {
      policyDocument: devicePolicyDocument(Stack.of(this)),
    });
    this.policyName = policy.ref;
    this.dataEndpoint = props.dataEndpoint ?? this.lookUpDataEndpoint();
    this.deadLetters = new Queue(this, 'DeadLetters', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    // A message here is a lost measurement: make it visible in the CloudWatch console.
    this.deadLetters
      .metricApproximateNumberOfMessagesVisible()
      .createAlarm(this, 'DeadLettersAlarm', {
        alarmDescription: 'Device results or ingestion events ended in the dead-letter queue',
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
    NagSuppressions.addResourceSuppressions(this.deadLetters, [
      {
        id: 'AwsSolutions-SQS3',
        reason: 'This queue is itself the dead-letter destination of the IoT rules and Lambda.',
      },
    ]);
  }

  /**
   * Routes `esm/devices/+/results` to `ingest`. A failed rule action goes to the dead-letter
   * queue; so does an event the function failed on after Lambda's asynchronous retries.
   */
  routeResults(ingest: LambdaFunction): CfnTopicRule {
    // topic() lets the ingestion refuse a result whose payload names another thing.
    return this.route('ResultsRule', ingest, {
      description: 'Device measurement results to the ingestion Lambda',
      sql: `SELECT *, topic() AS topic FROM '${resultsTopicFilter}'`,
    });
  }

  /**
   * Routes every message on `esm/devices/+/status` to `ingest`, progress updates included:
   * the workflow's result timeout counts from a job's last progress, so a slow device that
   * keeps reporting is never sent its work again. Devices report progress every 5 s by
   * default (device-client/README.md, "Message cost").
   */
  routeStatus(ingest: LambdaFunction): CfnTopicRule {
    return this.route('StatusRule', ingest, {
      description: 'Device states and job progress to the devices and runs tables',
      sql: `SELECT *, topic() AS topic FROM '${statusTopicFilter}'`,
    });
  }

  /**
   * A custom resource served by `cleanup` that deregisters every device when the stack is
   * deleted. It depends on the thing type and the device policy, so CloudFormation deletes
   * it (running the cleanup) before them; the function and its role outlive it through the
   * service token.
   */
  cleanUpOnDelete(cleanup: LambdaFunction): CustomResource {
    const resource = new CustomResource(this, 'FleetCleanup', {
      serviceToken: cleanup.functionArn,
      resourceType: 'Custom::EsmFleetCleanup',
    });
    resource.node.addDependency(
      this.node.findChild('ThingType'),
      this.node.findChild('DevicePolicy'),
    );
    if (cleanup.role !== undefined) resource.node.addDependency(cleanup.role);
    return resource;
  }

  /**
   * A third rule on the results topic writes each job's measuring time and device to a log
   * group; a metric filter turns it into `ESM/Devices JobSeconds` with a `Thing` dimension
   * (the dashboard's per-device graph). A rule action to CloudWatch metrics directly cannot
   * carry a dimension.
   */
  recordMeasurementTimes(): CfnTopicRule {
    const logGroup = new LogGroup(this, 'MeasurementTimes', {
      retention: RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    new MetricFilter(this, 'JobSecondsFilter', {
      logGroup,
      filterPattern: FilterPattern.exists('$.seconds'),
      metricNamespace: deviceMetrics.namespace,
      metricName: deviceMetrics.jobSeconds,
      metricValue: '$.seconds',
      dimensions: { Thing: '$.thing' },
      unit: Unit.SECONDS,
    });
    const role = new Role(this, 'MeasurementTimesRole', {
      assumedBy: new ServicePrincipal('iot.amazonaws.com'),
      description: 'Lets the measurement-time rule write to its log group',
    });
    logGroup.grantWrite(role);
    this.errorRole ??= this.createErrorRole();
    // ISO-8601 times as the daemon writes them (toISOString: milliseconds, Z).
    const epoch = (field: string) => `time_to_epoch(${field}, "yyyy-MM-dd'T'HH:mm:ss.SSSX")`;
    return new CfnTopicRule(this, 'MeasurementTimesRule', {
      topicRulePayload: {
        description: 'Seconds each device took per measurement job, for the dashboard',
        sql:
          `SELECT topic(3) AS thing, (${epoch('finishedAt')} - ${epoch('startedAt')}) / 1000.0 ` +
          `AS seconds FROM '${resultsTopicFilter}'`,
        awsIotSqlVersion: '2016-03-23',
        ruleDisabled: false,
        actions: [
          { cloudwatchLogs: { logGroupName: logGroup.logGroupName, roleArn: role.roleArn } },
        ],
        errorAction: {
          sqs: {
            queueUrl: this.deadLetters.queueUrl,
            roleArn: this.errorRole.roleArn,
            useBase64: false,
          },
        },
      },
    });
  }

  private route(
    id: string,
    target: LambdaFunction,
    rule: { description: string; sql: string },
  ): CfnTopicRule {
    this.errorRole ??= this.createErrorRole();
    const topicRule = new CfnTopicRule(this, id, {
      topicRulePayload: {
        ...rule,
        awsIotSqlVersion: '2016-03-23',
        ruleDisabled: false,
        actions: [{ lambda: { functionArn: target.functionArn } }],
        errorAction: {
          sqs: {
            queueUrl: this.deadLetters.queueUrl,
            roleArn: this.errorRole.roleArn,
            useBase64: false,
          },
        },
      },
    });
    target.addPermission(`InvokeFrom${id}`, {
      principal: new ServicePrincipal('iot.amazonaws.com'),
      sourceArn: topicRule.attrArn,
      sourceAccount: Stack.of(this).account,
    });
    target.configureAsyncInvoke({
      retryAttempts: 2,
      onFailure: new SqsDestination(this.deadLetters),
    });
    return topicRule;
  }

  private createErrorRole(): Role {
    const role = new Role(this, 'RuleErrorRole', {
      assumedBy: new ServicePrincipal('iot.amazonaws.com'),
      description: 'Lets the topic rules put undeliverable messages on the dead-letter queue',
    });
    this.deadLetters.grantSendMessages(role);
    return role;
  }

  private lookUpDataEndpoint(): string {
    const lookup = new AwsCustomResource(this, 'DataEndpoint', {
      onUpdate: {
        service: 'Iot',
        action: 'describeEndpoint',
        parameters: { endpointType: 'iot:Data-ATS' },
        physicalResourceId: PhysicalResourceId.fromResponse('endpointAddress'),
      },
      policy: AwsCustomResourcePolicy.fromStatements([
        new PolicyStatement({ actions: ['iot:DescribeEndpoint'], resources: ['*'] }),
      ]),
      installLatestAwsSdk: false,
    });
    const stack = Stack.of(this);
    // The custom resource's provider is a singleton function at the stack's root.
    const provider = stack.node.tryFindChild(
      `AWS${AwsCustomResource.PROVIDER_FUNCTION_UUID.replace(/-/g, '')}`,
    );
    NagSuppressions.addResourceSuppressions(
      [lookup, ...(provider === undefined ? [] : [provider])],
      [
        {
          id: 'AwsSolutions-IAM5',
          reason: 'iot:DescribeEndpoint supports no resource-level permissions.',
        },
        {
          id: 'AwsSolutions-IAM4',
          reason: 'The CDK custom resource provider uses AWSLambdaBasicExecutionRole for its logs.',
        },
        {
          id: 'AwsSolutions-L1',
          reason: 'The CDK custom resource provider picks its own runtime.',
        },
      ],
      true,
    );
    return lookup.getResponseField('endpointAddress');
  }
}

/**
 * The policy attached to every device certificate. `${iot:Connection.Thing.ThingName}` is
 * the thing the certificate is attached to, so a device connects only with its own thing name
 * as client id and only receives its own jobs and publishes its own results and status
 * (status retained).
 */
export function devicePolicyDocument(stack: Stack): Record<string, unknown> {
  const arn = (resource: string) => stack.formatArn({ service: 'iot', resource });
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: 'iot:Connect',
        Resource: arn(`client/${THING_VARIABLE}`),
        Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      },
      {
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: arn(`topicfilter/${topics.jobs(THING_VARIABLE)}`),
      },
      {
        Effect: 'Allow',
        Action: 'iot:Receive',
        Resource: arn(`topic/${topics.jobs(THING_VARIABLE)}`),
      },
      {
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource: [
          arn(`topic/${topics.results(THING_VARIABLE)}`),
          arn(`topic/${topics.status(THING_VARIABLE)}`),
        ],
      },
      // The daemon keeps its last status (and its last will, "offline") retained, which IoT
      // Core authorises separately; without it the broker drops the connection.
      {
        Effect: 'Allow',
        Action: 'iot:RetainPublish',
        Resource: arn(`topic/${topics.status(THING_VARIABLE)}`),
      },
    ],
  };
}
