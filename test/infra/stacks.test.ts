/**
 * CDK assertions on what matters in the synthesised templates: device isolation in the IoT
 * policy, the results rule, the state machine's Retry/Catch, IAM authorisation on the API,
 * encryption, least-privilege grants, and cdk-nag AwsSolutions (no unsuppressed finding, each
 * suppression justified). The app is built once, with placeholder code instead of bundles.
 */
import { App, Aspects, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import type { CfnResource } from 'aws-cdk-lib/core';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { DeviceFleet } from '../../infra/constructs/device-fleet.ts';
import { createEsmApp } from '../../infra/esm-app.ts';
import { envNames, type FunctionName, functions, tableKeys } from '../../lambdas/manifest.ts';
import {
  permanentErrors,
  states,
  taskOfState,
  transientErrors,
} from '../../lambdas/workflow/definition.ts';

type Json = Record<string, unknown>;

let stateful: Template;
let stateless: Template;
let built: ReturnType<typeof createEsmApp>;

beforeAll(() => {
  built = createEsmApp({ bundle: false });
  // Synthesis also runs the aspects, so cdk-nag's annotations exist from here on.
  stateful = Template.fromStack(built.stateful);
  stateless = Template.fromStack(built.stateless);
});

/** Logical id of a manifest function (or its role) in the stateless stack. */
function logicalId(name: FunctionName, part: 'function' | 'role'): string {
  const fn = built.stateless.functions.functions[name];
  const construct = part === 'function' ? fn : fn.role;
  return built.stateless.getLogicalId(construct?.node.defaultChild as CfnResource);
}

/** IAM statements of the policies attached to a manifest function's role. */
function statementsOf(name: FunctionName): Json[] {
  const roleId = logicalId(name, 'role');
  const policies = stateless.findResources('AWS::IAM::Policy', {
    Properties: { Roles: Match.arrayWith([{ Ref: roleId }]) },
  });
  return Object.values(policies).flatMap(
    (policy) =>
      (policy as { Properties: { PolicyDocument: { Statement: Json[] } } }).Properties
        .PolicyDocument.Statement,
  );
}

function actionsOf(name: FunctionName): string[] {
  return statementsOf(name).flatMap((s) => [s.Action].flat() as string[]);
}

/** Replaces each intrinsic in a Fn::Join by `ref:<logical id>` and parses the JSON. */
function joinedJson(value: unknown): Json {
  if (typeof value === 'string') return JSON.parse(value) as Json;
  const [, parts] = (value as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
  const text = parts
    .map((part) => {
      if (typeof part === 'string') return part;
      const getAtt = (part as { 'Fn::GetAtt'?: [string, string] })['Fn::GetAtt'];
      return `ref:${getAtt?.[0] ?? JSON.stringify(part)}`;
    })
    .join('');
  return JSON.parse(text) as Json;
}

describe('stateful stack', () => {
  it('keeps the artifact bucket versioned, encrypted, private, SSL-only and retained', () => {
    stateful.hasResource('AWS::S3::Bucket', {
      Properties: {
        VersioningConfiguration: { Status: 'Enabled' },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [
            { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
          ],
        },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        LoggingConfiguration: Match.objectLike({ DestinationBucketName: Match.anyValue() }),
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    // Its name is an output: a replay's pool is uploaded there.
    const bucketId = built.stateful.getLogicalId(
      built.stateful.bucket.node.defaultChild as CfnResource,
    );
    expect(stateful.toJSON().Outputs.ArtifactBucketName.Value).toEqual({ Ref: bucketId });
    stateful.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('creates one encrypted, on-demand, recoverable, retained table per manifest key schema', () => {
    const tables = stateful.findResources('AWS::DynamoDB::Table');
    expect(Object.keys(tables)).toHaveLength(Object.keys(tableKeys).length);
    for (const table of Object.values(tables)) {
      expect(table).toMatchObject({
        DeletionPolicy: 'Retain',
        Properties: {
          BillingMode: 'PAY_PER_REQUEST',
          SSESpecification: { SSEEnabled: true },
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        },
      });
    }
    stateful.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: tableKeys.iterationsTable.partitionKey, KeyType: 'HASH' },
        { AttributeName: tableKeys.iterationsTable.sortKey, KeyType: 'RANGE' },
      ],
      AttributeDefinitions: Match.arrayWith([
        { AttributeName: tableKeys.iterationsTable.sortKey, AttributeType: 'N' },
      ]),
    });
  });
});

describe('functions', () => {
  it('runs every manifest function on Node 22, arm64, with active tracing and its env', () => {
    for (const name of Object.keys(functions) as FunctionName[]) {
      const resource = stateless.toJSON().Resources[logicalId(name, 'function')];
      expect(resource.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'Active' },
        MemorySize: (functions[name] as { memoryMb?: number }).memoryMb ?? 256,
      });
      const env = Object.keys(resource.Properties.Environment.Variables);
      for (const key of functions[name].env) expect(env).toContain(envNames[key]);
    }
  });

  it('wires the IoT names, the data endpoint and the state machine into the environment', () => {
    const env = (name: FunctionName) =>
      stateless.toJSON().Resources[logicalId(name, 'function')].Properties.Environment.Variables;
    const idOf = (child: string) =>
      built.stateless.getLogicalId(built.stateless.fleet.node.findChild(child) as CfnResource);
    expect(env('apiRegisterDevice')).toMatchObject({
      [envNames.thingType]: { Ref: idOf('ThingType') },
      [envNames.devicePolicy]: { Ref: idOf('DevicePolicy') },
      [envNames.iotDataEndpoint]: {
        'Fn::GetAtt': [expect.stringMatching(/DataEndpoint/), 'endpointAddress'],
      },
    });
    expect(env('apiStartRun')[envNames.stateMachineArn]).toEqual({
      Ref: expect.stringMatching(/StateMachine/),
    });
  });

  it('gives every function a log group with a retention', () => {
    const groups = Object.values(stateless.findResources('AWS::Logs::LogGroup'));
    expect(groups.length).toBeGreaterThanOrEqual(Object.keys(functions).length);
    for (const group of groups) {
      expect((group as { Properties: Json }).Properties.RetentionInDays).toBeGreaterThan(0);
    }
  });
});

describe('least privilege', () => {
  it('lets the predict function read the bucket and nothing else', () => {
    const actions = actionsOf('apiPredict');
    expect(actions.some((a) => a.startsWith('dynamodb:'))).toBe(false);
    expect(actions.some((a) => a.startsWith('iot:'))).toBe(false);
    expect(actions.some((a) => a.startsWith('s3:Put') || a.startsWith('s3:Delete'))).toBe(false);
    expect(actions).toContain('s3:GetObject*');
  });

  it('lets only the dispatcher publish, and only to the jobs topics', () => {
    for (const name of Object.keys(functions) as FunctionName[]) {
      const publish = statementsOf(name).filter((s) => [s.Action].flat().includes('iot:Publish'));
      if (name !== 'workflowDispatch') {
        expect(publish, name).toEqual([]);
        continue;
      }
      expect(publish).toHaveLength(1);
      const resource = JSON.stringify(publish[0]?.Resource);
      expect(resource).toContain(':topic/esm/devices/*/jobs');
      expect(resource).not.toContain('/results');
    }
  });

  it('grants no DynamoDB writes to functions that only read', () => {
    for (const name of ['apiListDevices', 'apiGetRun'] as const) {
      const actions = actionsOf(name);
      expect(actions).toContain('dynamodb:Query');
      for (const write of ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem']) {
        expect(actions, name).not.toContain(write);
      }
    }
  });

  it('grants the device lifecycle on the resource types AWS authorises each action on', () => {
    // Service Authorization Reference: AttachPolicy/DetachPolicy and Attach/DetachThingPrincipal
    // authorise on `cert`; the thing calls on `thing`; certificate creation has no resource.
    const onResource = (name: FunctionName, action: string) =>
      statementsOf(name)
        .filter((s) => [s.Action].flat().includes(action))
        .flatMap((s) => [s.Resource].flat().map((r) => JSON.stringify(r)));
    for (const name of ['apiRegisterDevice', 'apiRotateCertificate'] as const) {
      for (const action of ['iot:AttachPolicy', 'iot:AttachThingPrincipal']) {
        expect(onResource(name, action), `${name} ${action}`).toEqual([
          expect.stringMatching(/:cert\/\*"\]\]\}$/),
        ]);
      }
    }
    for (const name of ['apiRegisterDevice', 'apiRotateCertificate', 'apiDeleteDevice'] as const) {
      for (const action of [
        'iot:DetachPolicy',
        'iot:DetachThingPrincipal',
        'iot:DeleteCertificate',
      ]) {
        expect(onResource(name, action), `${name} ${action}`).toEqual([
          expect.stringMatching(/:cert\/\*"\]\]\}$/),
        ]);
      }
    }
    expect(onResource('apiRegisterDevice', 'iot:CreateThing')).toEqual([
      expect.stringMatching(/:thing\/\*"\]\]\}$/),
    ]);
    const wildcard = (name: FunctionName) =>
      statementsOf(name)
        .filter((s) => s.Resource === '*')
        .flatMap((s) => [s.Action].flat())
        .sort();
    expect(wildcard('apiRegisterDevice')).toEqual([
      'iot:CreateCertificateFromCsr',
      'iot:CreateKeysAndCertificate',
      'xray:PutTelemetryRecords',
      'xray:PutTraceSegments',
    ]);
    // Deleting never creates: no certificate creation, no attach.
    const deletes = actionsOf('apiDeleteDevice');
    for (const action of ['iot:CreateKeysAndCertificate', 'iot:AttachPolicy', 'iot:CreateThing']) {
      expect(deletes).not.toContain(action);
    }
    // Only the lifecycle functions touch the IoT registry.
    for (const name of Object.keys(functions) as FunctionName[]) {
      const lifecycle = [
        'apiRegisterDevice',
        'apiRotateCertificate',
        'apiDeleteDevice',
        'fleetCleanup',
      ];
      if (lifecycle.includes(name)) continue;
      const registry = actionsOf(name).filter((a) => a.startsWith('iot:') && a !== 'iot:Publish');
      expect(registry, name).toEqual([]);
    }
  });
});

describe('IoT', () => {
  it('confines each device to its own client id and topics with the thing-name variable', () => {
    const policies = Object.values(stateless.findResources('AWS::IoT::Policy'));
    expect(policies).toHaveLength(1);
    const statements = (policies[0] as { Properties: { PolicyDocument: { Statement: Json[] } } })
      .Properties.PolicyDocument.Statement;
    const byAction = (action: string) => statements.filter((s) => s.Action === action);
    const resources = (action: string) =>
      byAction(action).flatMap((s) => [s.Resource].flat().map((r) => JSON.stringify(r)));
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the IoT policy variable itself
    const own = '${iot:Connection.Thing.ThingName}';
    expect(resources('iot:Connect')).toEqual([expect.stringContaining(`:client/${own}`)]);
    expect(byAction('iot:Connect')[0]?.Condition).toEqual({
      Bool: { 'iot:Connection.Thing.IsAttached': 'true' },
    });
    expect(resources('iot:Subscribe')).toEqual([
      expect.stringContaining(`:topicfilter/esm/devices/${own}/jobs`),
    ]);
    expect(resources('iot:Receive')).toEqual([
      expect.stringContaining(`:topic/esm/devices/${own}/jobs`),
    ]);
    expect(resources('iot:Publish').sort()).toEqual([
      expect.stringContaining(`:topic/esm/devices/${own}/results`),
      expect.stringContaining(`:topic/esm/devices/${own}/status`),
    ]);
    expect(resources('iot:RetainPublish')).toEqual([
      expect.stringContaining(`:topic/esm/devices/${own}/status`),
    ]);
    // No wildcard lets one device reach another's topics.
    const all = JSON.stringify(statements);
    expect(all).not.toMatch(/devices\/[*+#]/);
    expect(statements.map((s) => s.Action).sort()).toEqual([
      'iot:Connect',
      'iot:Publish',
      'iot:Receive',
      'iot:RetainPublish',
      'iot:Subscribe',
    ]);
  });

  it('routes results to the ingestion function and failures to an encrypted queue', () => {
    const ingest = logicalId('ingestResults', 'function');
    stateless.hasResourceProperties('AWS::IoT::TopicRule', {
      TopicRulePayload: {
        Sql: "SELECT *, topic() AS topic FROM 'esm/devices/+/results'",
        RuleDisabled: false,
        Actions: [{ Lambda: { FunctionArn: { 'Fn::GetAtt': [ingest, 'Arn'] } } }],
        ErrorAction: { Sqs: { QueueUrl: { Ref: Match.stringLikeRegexp('DeadLetters') } } },
      },
    });
    stateless.hasResourceProperties('AWS::Lambda::Permission', {
      FunctionName: { 'Fn::GetAtt': [ingest, 'Arn'] },
      Principal: 'iot.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('ResultsRule'), 'Arn'] },
    });
    stateless.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true });
    stateless.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    stateless.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: ingest },
      DestinationConfig: { OnFailure: { Destination: Match.anyValue() } },
    });
  });
});

it('deregisters the fleet before the device policy and thing type are deleted', () => {
  const resources = stateless.toJSON().Resources as Record<string, Json & { DependsOn?: string[] }>;
  const [id, cleanup] =
    Object.entries(resources).find(([, r]) => r.Type === 'Custom::EsmFleetCleanup') ?? [];
  expect(id).toBeDefined();
  const idOf = (child: string) =>
    built.stateless.getLogicalId(built.stateless.fleet.node.findChild(child) as CfnResource);
  // CloudFormation deletes a resource before what it depends on: the cleanup runs first.
  expect(cleanup?.DependsOn).toEqual(
    expect.arrayContaining([idOf('ThingType'), idOf('DevicePolicy')]),
  );
  expect((cleanup?.Properties as Json | undefined)?.ServiceToken).toEqual({
    'Fn::GetAtt': [logicalId('fleetCleanup', 'function'), 'Arn'],
  });
  expect(actionsOf('fleetCleanup')).toEqual(
    expect.arrayContaining(['iot:ListThings', 'iot:DeleteCertificate', 'iot:DeleteThing']),
  );
  expect(actionsOf('fleetCleanup')).not.toContain('iot:CreateKeysAndCertificate');
});

describe('operations', () => {
  it('sends every alarm to one SNS topic that the stack outputs', () => {
    const topics = stateless.findResources('AWS::SNS::Topic');
    expect(Object.keys(topics)).toHaveLength(1);
    const topicId = Object.keys(topics)[0] as string;
    const alarms = Object.values(stateless.findResources('AWS::CloudWatch::Alarm')).map(
      (a) => (a as { Properties: Json }).Properties,
    );
    // Failed runs, dead letters, API 5xx, ingestion errors.
    expect(alarms.length).toBeGreaterThanOrEqual(4);
    for (const alarm of alarms) {
      expect(alarm.AlarmActions, String(alarm.AlarmDescription)).toEqual([{ Ref: topicId }]);
    }
    expect(stateless.toJSON().Outputs.AlarmTopicArn.Value).toEqual({ Ref: topicId });
    // Only TLS publishers (cdk-nag SNS3).
    stateless.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('has a dashboard of runs, iterations, per-device measurement time and failures', () => {
    const dashboards = Object.values(stateless.findResources('AWS::CloudWatch::Dashboard'));
    expect(dashboards).toHaveLength(1);
    const body = JSON.stringify(
      (dashboards[0] as { Properties: { DashboardBody: unknown } }).Properties.DashboardBody,
    );
    for (const title of [
      'Runs',
      'Iterations (trainings)',
      'Measurement time per device (s per job)',
      'Failures',
    ]) {
      expect(body).toContain(`\\"title\\":\\"${title}\\"`);
    }
    expect(body).toContain('ExecutionsFailed');
    expect(body).toContain('SEARCH(');
    // The per-device metric comes from the measurement-time rule through a metric filter.
    stateless.hasResourceProperties('AWS::IoT::TopicRule', {
      TopicRulePayload: Match.objectLike({
        Sql: Match.stringLikeRegexp(
          "^SELECT topic\\(3\\) AS thing, .* AS seconds FROM 'esm/devices/\\+/results'$",
        ),
        Actions: [{ CloudwatchLogs: Match.objectLike({ LogGroupName: Match.anyValue() }) }],
      }),
    });
    stateless.hasResourceProperties('AWS::Logs::MetricFilter', {
      MetricTransformations: [
        Match.objectLike({
          MetricNamespace: 'ESM/Devices',
          MetricName: 'JobSeconds',
          MetricValue: '$.seconds',
          Dimensions: [{ Key: 'Thing', Value: '$.thing' }],
        }),
      ],
    });
  });

  it('serves the device lifecycle and predictor routes', () => {
    const methods = Object.values(stateless.findResources('AWS::ApiGateway::Method')).map(
      (m) => (m as { Properties: Json }).Properties,
    );
    const verbs = methods.map((m) => m.HttpMethod).sort();
    expect(verbs.filter((v) => v === 'DELETE')).toHaveLength(1);
    stateless.hasResourceProperties('AWS::ApiGateway::Resource', { PathPart: 'certificate' });
    stateless.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'POST',
      AuthorizationType: 'AWS_IAM',
      RequestParameters: { 'method.request.path.thing': true },
    });
  });
});

it('skips the endpoint lookup when the data endpoint is given', () => {
  const stack = new Stack(new App(), 'Fleet');
  new DeviceFleet(stack, 'Devices', { dataEndpoint: 'abc-ats.iot.eu-west-1.amazonaws.com' });
  const template = Template.fromStack(stack);
  template.resourceCountIs('Custom::AWS', 0);
  template.resourceCountIs('AWS::IoT::Policy', 1);
});

it('routes device states and every progress update to the status function', () => {
  const ingest = logicalId('ingestStatus', 'function');
  stateless.hasResourceProperties('AWS::IoT::TopicRule', {
    TopicRulePayload: {
      // No WHERE: the result timeout counts from a job's last progress (docs/workflow.md).
      Sql: "SELECT *, topic() AS topic FROM 'esm/devices/+/status'",
      Actions: [{ Lambda: { FunctionArn: { 'Fn::GetAtt': [ingest, 'Arn'] } } }],
      ErrorAction: { Sqs: Match.objectLike({ QueueUrl: Match.anyValue() }) },
    },
  });
  // Results, status, and the measurement-time rule of the dashboard.
  stateless.resourceCountIs('AWS::IoT::TopicRule', 3);
  // An update, and a read to tell a stale status from an unknown device.
  expect(actionsOf('ingestStatus')).toEqual(
    expect.arrayContaining(['dynamodb:UpdateItem', 'dynamodb:GetItem']),
  );
});

describe('state machine', () => {
  it('runs the shared definition with Retry on transient and Catch on named errors', () => {
    const machines = Object.values(stateless.findResources('AWS::StepFunctions::StateMachine'));
    expect(machines).toHaveLength(1);
    const props = (machines[0] as { Properties: Json }).Properties;
    expect(props).toMatchObject({
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: true },
    });
    const definition = joinedJson(props.DefinitionString) as {
      States: Record<string, Json & { Retry?: Json[]; Catch?: Json[] }>;
    };
    for (const [state, task] of Object.entries(taskOfState)) {
      const body = definition.States[state];
      expect(body?.Type, state).toBe('Task');
      expect(body?.Resource).toBe(`ref:${logicalId(task, 'function')}`);
      expect(body?.Retry?.[0]?.ErrorEquals).toEqual(expect.arrayContaining([...transientErrors]));
      expect(body?.Catch?.length).toBeGreaterThan(0);
      if (state === states.markFailed) continue;
      expect(body?.Catch?.[0]).toMatchObject({
        ErrorEquals: expect.arrayContaining(['UnstableDeviceError', 'MeasurementTimeoutError']),
        Next: states.markFailed,
      });
      expect(body?.Catch?.[0]?.ErrorEquals).toEqual([...permanentErrors]);
    }
  });

  it('may invoke the task functions and gives the run starter only StartExecution', () => {
    expect(actionsOf('apiStartRun')).toContain('states:StartExecution');
    expect(actionsOf('apiStartRun')).not.toContain('states:StopExecution');
    const machineRole = Object.entries(stateless.findResources('AWS::IAM::Role')).find(([id]) =>
      id.includes('StateMachineRole'),
    )?.[0];
    const invoke = JSON.stringify(
      stateless.findResources('AWS::IAM::Policy', {
        Properties: { Roles: [{ Ref: machineRole }] },
      }),
    );
    for (const task of Object.values(taskOfState)) {
      expect(invoke).toContain(logicalId(task, 'function'));
    }
    expect(invoke).not.toContain(logicalId('apiPredict', 'function'));
  });
});

describe('API', () => {
  it('serves every manifest route with IAM authorisation and request validation', () => {
    const methods = Object.values(stateless.findResources('AWS::ApiGateway::Method')).map(
      (m) => (m as { Properties: Json }).Properties,
    );
    const routes = Object.values(functions).flatMap((f) =>
      'route' in f && f.route !== undefined ? [f.route] : [],
    );
    expect(methods).toHaveLength(routes.length);
    for (const method of methods) {
      expect(method).toMatchObject({
        AuthorizationType: 'AWS_IAM',
        RequestValidatorId: expect.anything(),
      });
    }
    const paths = Object.values(stateless.findResources('AWS::ApiGateway::Resource')).map(
      (r) => (r as { Properties: { PathPart: string } }).Properties.PathPart,
    );
    expect(paths.sort()).toEqual([
      'certificate',
      'devices',
      'predict',
      'predictors',
      'runs',
      '{id}',
      '{id}',
      '{thing}',
    ]);
    stateless.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'DELETE',
      AuthorizationType: 'AWS_IAM',
      RequestParameters: { 'method.request.path.thing': true },
    });
    stateless.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'GET',
      RequestParameters: { 'method.request.path.id': true },
    });
    stateless.hasResourceProperties('AWS::ApiGateway::RequestValidator', {
      ValidateRequestBody: true,
      ValidateRequestParameters: true,
    });
  });

  it('logs access, traces and throttles the stage', () => {
    stateless.hasResourceProperties('AWS::ApiGateway::Stage', {
      AccessLogSetting: { DestinationArn: Match.anyValue() },
      TracingEnabled: true,
      MethodSettings: [
        Match.objectLike({
          ThrottlingRateLimit: Match.anyValue(),
          ThrottlingBurstLimit: Match.anyValue(),
          LoggingLevel: 'ERROR',
        }),
      ],
    });
  });
});

it('names the stacks for the prefix so that stages can coexist', () => {
  expect(Stack.of(built.stateful).stackName).toBe('EsmStateful');
  expect(built.stateless.stackName).toBe('EsmStateless');
});

const nagFinding = Match.stringLikeRegexp('AwsSolutions-.*');

describe('cdk-nag AwsSolutions', () => {
  it('reports no unsuppressed errors or warnings in either stack', () => {
    for (const stack of [built.stateful, built.stateless]) {
      const annotations = Annotations.fromStack(stack);
      expect(annotations.findError('*', nagFinding), stack.stackName).toEqual([]);
      expect(annotations.findWarning('*', nagFinding), stack.stackName).toEqual([]);
    }
  });

  it('justifies every suppression with a reason', () => {
    const template = JSON.stringify(stateless.toJSON());
    const reasons = [...template.matchAll(/"reason":"([^"]*)"/g)].map((m) => m[1] ?? '');
    expect(reasons.length).toBeGreaterThan(0);
    for (const reason of reasons) expect(reason.length).toBeGreaterThan(20);
  });

  it('flags a bucket without encryption, logs or SSL enforcement (control)', () => {
    const app = new App();
    const stack = new Stack(app, 'Control');
    new Bucket(stack, 'Plain');
    Aspects.of(app).add(new AwsSolutionsChecks());
    Template.fromStack(stack);
    const errors = Annotations.fromStack(stack).findError('*', nagFinding);
    const ids = errors.map((e) => String(e.entry.data));
    expect(ids.some((id) => id.includes('AwsSolutions-S1'))).toBe(true);
    expect(ids.some((id) => id.includes('AwsSolutions-S10'))).toBe(true);
  });
});
