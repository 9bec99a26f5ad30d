import { Duration, Lazy, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Effect, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, type IFunction, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import {
  type Access,
  type EnvName,
  envNames,
  type FunctionName,
  type FunctionSpec,
  functions,
} from '../../lambdas/manifest.ts';
import { jobsTopicArn } from './device-fleet.ts';
import { type CodeOptions, handlerCode } from './lambda-code.ts';
import type { TableName } from './tables.ts';

export interface ManifestFunctionsProps {
  readonly code: CodeOptions;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
}

/** What the access list of the manifest is granted on. */
export interface AccessTargets {
  readonly bucket: IBucket;
  readonly tables: Record<TableName, ITable>;
  readonly stateMachine: IStateMachine;
  readonly devicePolicyName: string;
}

const tableOf = {
  runs: 'runsTable',
  iterations: 'iterationsTable',
  samples: 'samplesTable',
  devices: 'devicesTable',
} as const satisfies Record<string, TableName>;

/**
 * One Lambda per entry of lambdas/manifest.ts: Node 22 on arm64, X-Ray tracing, its own log
 * group with a retention, its own role. Environment values and grants come from the manifest,
 * so a new handler needs a manifest entry and no infrastructure code. Values that exist only
 * later (the state machine ARN) are bound with `bindEnv`, grants with `grantAccess`.
 */
export class ManifestFunctions extends Construct {
  readonly functions: Record<FunctionName, NodejsFunction>;
  private readonly envValues = new Map<EnvName, string>();

  constructor(scope: Construct, id: string, props: ManifestFunctionsProps) {
    super(scope, id);
    const entries = Object.entries(functions) as [FunctionName, FunctionSpec][];
    this.functions = Object.fromEntries(
      entries.map(([name, spec]) => [name, this.create(name, spec, props)]),
    ) as Record<FunctionName, NodejsFunction>;
  }

  /** Sets the value every function that lists `name` in its `env` receives. */
  bindEnv(name: EnvName, value: string): void {
    this.envValues.set(name, value);
  }

  /** Turns each function's access list into least-privilege IAM grants. */
  grantAccess(targets: AccessTargets): void {
    for (const [name, spec] of Object.entries(functions) as [FunctionName, FunctionSpec][]) {
      const fn = this.functions[name];
      for (const access of spec.access) grant(fn, access, targets);
    }
  }

  private create(name: FunctionName, spec: FunctionSpec, props: ManifestFunctionsProps) {
    const id = name.charAt(0).toUpperCase() + name.slice(1);
    const logGroup = new LogGroup(this, `${id}Logs`, {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // An own role without the AWSLambdaBasicExecutionRole managed policy, whose log
    // permissions cover every log group of the account.
    const role = new Role(this, `${id}Role`, {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `Runs ${spec.entry}`,
    });
    logGroup.grantWrite(role);
    const environment: Record<string, string> = {
      NODE_OPTIONS: '--enable-source-maps',
      POWERTOOLS_SERVICE_NAME: 'esm',
    };
    for (const envName of spec.env) {
      environment[envNames[envName]] = Lazy.string({ produce: () => this.envValue(envName) });
    }
    const fn = new NodejsFunction(this, id, {
      ...handlerCode(spec, props.code),
      description: spec.description,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: spec.memoryMb ?? 256,
      timeout: Duration.seconds(spec.timeoutSeconds ?? 30),
      tracing: Tracing.ACTIVE,
      logGroup,
      role,
      environment,
    });
    NagSuppressions.addResourceSuppressions(
      fn,
      [
        {
          id: 'AwsSolutions-L1',
          reason:
            'nodejs22.x is the runtime the handlers are built and tested for (ARCHITECTURE.md).',
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(
      role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'X-Ray PutTraceSegments/PutTelemetryRecords support no resource scoping; bucket reads ' +
            'and writes are scoped to the one artifact bucket (objects need /*); log streams of ' +
            "the function's own log group; IoT resources whose names are not known before " +
            'registration (things, certificates) or jobs topics of every device.',
          appliesTo: [
            'Resource::*',
            { regex: '/^Action::s3:.*\\*$/g' },
            { regex: '/^Resource::.*\\/\\*$/g' },
            { regex: '/^Resource::.*:\\*$/g' },
            { regex: '/^Resource::.*topic\\/esm\\/devices\\/\\*\\/jobs$/g' },
            { regex: '/^Resource::.*:(thing|cert)\\/\\*$/g' },
          ],
        },
      ],
      true,
    );
    return fn;
  }

  private envValue(name: EnvName): string {
    const value = this.envValues.get(name);
    if (value === undefined) {
      throw new Error(`manifest env '${name}' is used by a function but never bound in infra/`);
    }
    return value;
  }
}

function grant(fn: IFunction, access: Access, targets: AccessTargets): void {
  const [resource, verb] = access.split(':') as [string, string];
  if (resource in tableOf) {
    const table = targets.tables[tableOf[resource as keyof typeof tableOf]];
    if (verb === 'read') table.grantReadData(fn);
    else table.grantWriteData(fn);
    return;
  }
  const stack = Stack.of(fn);
  const iotArn = (resourceName: string) =>
    stack.formatArn({ service: 'iot', resource: resourceName });
  switch (access) {
    case 'bucket:read':
      targets.bucket.grantRead(fn);
      return;
    case 'bucket:write':
      targets.bucket.grantPut(fn);
      return;
    case 'states:start':
      targets.stateMachine.grantStartExecution(fn);
      return;
    case 'iot:publish-jobs':
      fn.addToRolePolicy(
        new PolicyStatement({
          effect: Effect.ALLOW,
          actions: ['iot:Publish'],
          resources: [jobsTopicArn(stack)],
        }),
      );
      return;
    case 'iot:register-device':
    case 'iot:rotate-certificate':
    case 'iot:delete-device':
    case 'iot:clean-fleet':
      for (const statement of deviceLifecycleStatements(access, iotArn, targets.devicePolicyName)) {
        fn.addToRolePolicy(statement);
      }
      return;
    default:
      throw new Error(`manifest access '${access}' has no grant in infra/constructs`);
  }
}

/**
 * The IoT registry calls of each device lifecycle step (lambdas/adapters/iot-registry.ts),
 * on the resource types AWS's Service Authorization Reference lists for each action:
 * AttachPolicy/DetachPolicy and Attach/DetachThingPrincipal authorise on the certificate
 * (`cert`), not on the policy or the thing. Neither has a condition key naming the policy or
 * thing, so `cert/*` is as narrow as IAM allows; which policy is attached is fixed in code
 * (`ESM_DEVICE_POLICY`). Certificate creation has no resource type at all (`*`).
 */
export function deviceLifecycleStatements(
  access:
    | 'iot:register-device'
    | 'iot:rotate-certificate'
    | 'iot:delete-device'
    | 'iot:clean-fleet',
  iotArn: (resource: string) => string,
  devicePolicyName: string,
): PolicyStatement[] {
  // Every step may retire a certificate: rollback of a half-done registration or rotation,
  // the old certificate after a rotation, all of them on delete.
  const retire = [
    'iot:DetachThingPrincipal',
    'iot:DetachPolicy',
    'iot:UpdateCertificate',
    'iot:DeleteCertificate',
  ];
  const attach = ['iot:AttachPolicy', 'iot:AttachThingPrincipal'];
  const create = ['iot:CreateKeysAndCertificate', 'iot:CreateCertificateFromCsr'];
  const byAccess = {
    'iot:register-device': {
      thing: ['iot:DescribeThing', 'iot:CreateThing', 'iot:DeleteThing'],
      cert: [...attach, ...retire],
      any: create,
    },
    'iot:rotate-certificate': {
      thing: ['iot:ListThingPrincipals'],
      cert: [...attach, ...retire],
      any: create,
    },
    'iot:delete-device': {
      thing: ['iot:ListThingPrincipals', 'iot:DeleteThing'],
      cert: retire,
      any: [],
    },
    // ListThings has no resource type; ListTargetsForPolicy authorises on the policy.
    'iot:clean-fleet': {
      thing: ['iot:ListThingPrincipals', 'iot:DeleteThing'],
      cert: retire,
      any: ['iot:ListThings'],
    },
  }[access];
  const statements = [
    new PolicyStatement({ actions: byAccess.thing, resources: [iotArn('thing/*')] }),
    new PolicyStatement({ actions: byAccess.cert, resources: [iotArn('cert/*')] }),
  ];
  if (byAccess.any.length > 0) {
    statements.push(new PolicyStatement({ actions: byAccess.any, resources: ['*'] }));
  }
  if (access === 'iot:clean-fleet') {
    statements.push(
      new PolicyStatement({
        actions: ['iot:ListTargetsForPolicy'],
        resources: [iotArn(`policy/${devicePolicyName}`)],
      }),
    );
  }
  return statements;
}
