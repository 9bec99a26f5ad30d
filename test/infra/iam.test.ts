/**
 * IAM as AWS evaluates it. For every Lambda function in the synthesised stacks, each AWS call
 * its handler makes (the action and the resource ARN it uses, built from the function's own
 * resolved environment) is simulated against that function's role policies with AWS's
 * action and resource-type data (@cloud-copilot/iam-simulate + iam-data). An implicit deny,
 * or an ARN that is not a resource type of the action, fails the test. Moto checks no IAM:
 * this is what catches a grant on the wrong resource type before a real account does.
 *
 * The calls are listed per manifest access need below (what the adapters send for it);
 * test/cloud/device-lifecycle.test.ts runs the device API handlers against the emulator,
 * records the calls they really make, and simulates those too.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createEsmApp } from '../../infra/esm-app.ts';
import { type Access, envNames, type FunctionName, functions } from '../../lambdas/manifest.ts';
import { type AwsCall, simulate } from '../support/aws-calls.ts';
import { account, DeployedApp, type DeployedLambda, region } from '../support/deployed-template.ts';

type Env = Record<string, string>;

const tableArn = (env: Env, key: keyof typeof envNames) =>
  `arn:aws:dynamodb:${region}:${account}:table/${env[envNames[key]]}`;
const iotArn = (resource: string) => `arn:aws:iot:${region}:${account}:${resource}`;
const certArn = iotArn('cert/0f3c1ab2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f');

const thingArn = iotArn('thing/rpi5-lab-1');
const attachCalls: AwsCall[] = [
  { action: 'iot:AttachPolicy', resource: certArn },
  { action: 'iot:AttachThingPrincipal', resource: certArn },
];
const retireCalls: AwsCall[] = [
  { action: 'iot:DetachThingPrincipal', resource: certArn },
  { action: 'iot:DetachPolicy', resource: certArn },
  { action: 'iot:UpdateCertificate', resource: certArn },
  { action: 'iot:DeleteCertificate', resource: certArn },
];

/** What the adapters send for each access need (lambdas/adapters/*), as IAM calls. */
const callsOf: Record<Access, (env: Env) => AwsCall[]> = {
  'runs:read': (env) => [
    { action: 'dynamodb:GetItem', resource: tableArn(env, 'runsTable') },
    { action: 'dynamodb:Query', resource: tableArn(env, 'runsTable') },
    { action: 'dynamodb:Scan', resource: tableArn(env, 'runsTable') },
  ],
  'runs:write': (env) => [
    { action: 'dynamodb:PutItem', resource: tableArn(env, 'runsTable') },
    { action: 'dynamodb:UpdateItem', resource: tableArn(env, 'runsTable') },
  ],
  'iterations:read': (env) => [
    { action: 'dynamodb:Query', resource: tableArn(env, 'iterationsTable') },
  ],
  'iterations:write': (env) => [
    { action: 'dynamodb:PutItem', resource: tableArn(env, 'iterationsTable') },
  ],
  'samples:read': (env) => [
    { action: 'dynamodb:Query', resource: tableArn(env, 'samplesTable') },
    { action: 'dynamodb:GetItem', resource: tableArn(env, 'samplesTable') },
  ],
  'samples:write': (env) => [
    { action: 'dynamodb:PutItem', resource: tableArn(env, 'samplesTable') },
    { action: 'dynamodb:UpdateItem', resource: tableArn(env, 'samplesTable') },
  ],
  'devices:read': (env) => [
    { action: 'dynamodb:GetItem', resource: tableArn(env, 'devicesTable') },
    { action: 'dynamodb:Scan', resource: tableArn(env, 'devicesTable') },
  ],
  'devices:write': (env) => [
    { action: 'dynamodb:PutItem', resource: tableArn(env, 'devicesTable') },
    { action: 'dynamodb:UpdateItem', resource: tableArn(env, 'devicesTable') },
    { action: 'dynamodb:DeleteItem', resource: tableArn(env, 'devicesTable') },
  ],
  'bucket:read': (env) => [
    { action: 's3:GetObject', resource: `arn:aws:s3:::${env[envNames.bucket]}/runs/r1/data.jsonl` },
    { action: 's3:ListBucket', resource: `arn:aws:s3:::${env[envNames.bucket]}` },
  ],
  'bucket:write': (env) => [
    { action: 's3:PutObject', resource: `arn:aws:s3:::${env[envNames.bucket]}/runs/r1/data.jsonl` },
  ],
  'iot:publish-jobs': () => [
    { action: 'iot:Publish', resource: iotArn('topic/esm/devices/rpi5-lab-1/jobs') },
  ],
  // lambdas/adapters/iot-registry.ts: register (from a CSR or with AWS-made keys) and roll
  // back, rotate, delete.
  'iot:register-device': () => [
    { action: 'iot:DescribeThing', resource: thingArn },
    { action: 'iot:CreateThing', resource: thingArn },
    { action: 'iot:CreateKeysAndCertificate', resource: '*' },
    { action: 'iot:CreateCertificateFromCsr', resource: '*' },
    ...attachCalls,
    ...retireCalls,
    { action: 'iot:DeleteThing', resource: thingArn },
  ],
  'iot:rotate-certificate': () => [
    { action: 'iot:ListThingPrincipals', resource: thingArn },
    { action: 'iot:CreateKeysAndCertificate', resource: '*' },
    { action: 'iot:CreateCertificateFromCsr', resource: '*' },
    ...attachCalls,
    ...retireCalls,
  ],
  'iot:delete-device': () => [
    { action: 'iot:ListThingPrincipals', resource: thingArn },
    ...retireCalls,
    { action: 'iot:DeleteThing', resource: thingArn },
  ],
  'iot:clean-fleet': (env) => [
    { action: 'iot:ListThings', resource: '*' },
    {
      action: 'iot:ListTargetsForPolicy',
      resource: iotArn(`policy/${env[envNames.devicePolicy]}`),
    },
    { action: 'iot:ListThingPrincipals', resource: thingArn },
    ...retireCalls,
    { action: 'iot:DeleteThing', resource: thingArn },
  ],
  'states:start': (env) => [
    { action: 'states:StartExecution', resource: env[envNames.stateMachineArn] ?? '' },
  ],
};

/** What the Lambda service does with every function's role: logs and X-Ray traces. */
function runtimeCalls(lambda: DeployedLambda, logGroup: string): AwsCall[] {
  const stream = `arn:aws:logs:${region}:${account}:log-group:${logGroup}:log-stream:2026/12/01/[$LATEST]0a1b2c`;
  return [
    { action: 'logs:CreateLogStream', resource: stream },
    { action: 'logs:PutLogEvents', resource: stream },
    { action: 'xray:PutTraceSegments', resource: '*' },
  ].filter(() => lambda.logicalId !== '');
}

let app: DeployedApp;
let lambdas: DeployedLambda[];
let built: ReturnType<typeof createEsmApp>;

/** The manifest function a template Lambda is, if any. */
function manifestName(lambda: DeployedLambda): FunctionName | undefined {
  return (Object.keys(functions) as FunctionName[]).find(
    (name) =>
      built.stateless.getLogicalId(
        built.stateless.functions.functions[name].node.defaultChild as never,
      ) === lambda.logicalId,
  );
}

beforeAll(() => {
  built = createEsmApp({ bundle: false });
  app = new DeployedApp([built.stateful, built.stateless]);
  lambdas = app.lambdas(built.stateless.stackName);
});

/** The calls of one template Lambda, or undefined when the test knows none for it. */
function expectedCalls(lambda: DeployedLambda): AwsCall[] | undefined {
  const name = manifestName(lambda);
  if (name !== undefined) {
    const spec = functions[name];
    const fn = built.stateless.functions.functions[name];
    const logGroup = app.nameOf(
      built.stateless.stackName,
      built.stateless.getLogicalId(fn.logGroup.node.defaultChild as never),
    );
    return [
      ...runtimeCalls(lambda, logGroup),
      ...spec.access.flatMap((access: Access) => callsOf[access](lambda.env)),
    ];
  }
  // The CDK provider of the custom resource that looks up the IoT data endpoint.
  if (lambda.logicalId.startsWith('AWS679f53fac002430cb0da5b7982bd2287')) {
    return [{ action: 'iot:DescribeEndpoint', resource: '*' }];
  }
  return undefined;
}

describe('IAM simulation of every Lambda in the synthesised stacks', () => {
  it('knows the AWS calls of every function in the template', () => {
    expect(lambdas.length).toBeGreaterThanOrEqual(Object.keys(functions).length);
    const unknown = lambdas.filter((l) => expectedCalls(l) === undefined).map((l) => l.logicalId);
    expect(unknown, 'Lambdas whose calls this test does not list').toEqual([]);
  });

  it('allows each call a handler makes with its role policy (no implicit deny)', async () => {
    const denied: string[] = [];
    let simulated = 0;
    for (const lambda of lambdas) {
      const calls = expectedCalls(lambda) ?? [];
      for (const call of calls) {
        const verdict = await simulate(call, lambda.policies);
        simulated += 1;
        if (verdict.result !== 'Allowed') {
          denied.push(
            `${manifestName(lambda) ?? lambda.logicalId}: ${call.action} on ${call.resource} -> ${verdict.result}`,
          );
        }
      }
    }
    if (denied.length > 0) console.error(`IAM simulation denied:\n  ${denied.join('\n  ')}`);
    expect(simulated).toBeGreaterThan(50);
    expect(denied).toEqual([]);
  });

  it('denies what a function does not need (the simulation can say no)', async () => {
    const lambda = lambdas.find((l) => manifestName(l) === 'apiListDevices');
    if (lambda === undefined) throw new Error('apiListDevices missing from the template');
    const writes = await simulate(
      { action: 'dynamodb:PutItem', resource: tableArn(lambda.env, 'devicesTable') },
      lambda.policies,
    );
    const otherTable = await simulate(
      {
        action: 'dynamodb:Scan',
        resource: tableArn(lambda.env, 'devicesTable').replace(/\w+$/, 'x'),
      },
      lambda.policies,
    );
    const iot = await simulate(
      { action: 'iot:DeleteThing', resource: iotArn('thing/rpi5-lab-1') },
      lambda.policies,
    );
    expect([writes.result, otherTable.result, iot.result]).toEqual([
      'ImplicitlyDenied',
      'ImplicitlyDenied',
      'ImplicitlyDenied',
    ]);
  });
});
