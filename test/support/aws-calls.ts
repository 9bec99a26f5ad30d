/**
 * The AWS calls a handler makes, as IAM sees them (action and resource ARN), and their
 * evaluation against a role's policies with AWS's own action and resource-type data
 * (@cloud-copilot/iam-simulate and iam-data: the Service Authorization Reference as data).
 * `recordCalls` captures the real calls of SDK clients, so a test can run a handler against
 * the emulator and simulate exactly what it sent.
 */
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { account, region } from './deployed-template.ts';

/** One request as IAM authorises it. */
export interface AwsCall {
  readonly action: string;
  readonly resource: string;
}

export interface CallVerdict extends AwsCall {
  /** 'Allowed', 'ImplicitlyDenied', 'ExplicitlyDenied', or 'error: <why>' (bad action/ARN). */
  readonly result: string;
}

const principal = `arn:aws:iam::${account}:role/under-test`;

/**
 * Evaluates `call` against identity `policies` as IAM would. An ARN that is not a resource
 * type of the action (per the Service Authorization Reference) is an error, not an allow.
 */
export async function simulate(
  call: AwsCall,
  policies: readonly { name: string; policy: unknown }[],
): Promise<CallVerdict> {
  const outcome = await runSimulation(
    {
      request: {
        principal,
        action: call.action,
        resource: { resource: call.resource, accountId: account },
        contextVariables: {},
      },
      identityPolicies: policies.map((p) => ({ name: p.name, policy: p.policy })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    },
    {},
  );
  const result =
    outcome.resultType === 'error' ? `error: ${outcome.errors.message}` : outcome.overallResult;
  return { ...call, result };
}

const arn = {
  table: (name: string) => `arn:aws:dynamodb:${region}:${account}:table/${name}`,
  iot: (resource: string) => `arn:aws:iot:${region}:${account}:${resource}`,
};

/** lib-dynamodb command names -> the DynamoDB API action they send. */
const documentActions: Record<string, string> = {
  Get: 'GetItem',
  Put: 'PutItem',
  Update: 'UpdateItem',
  Delete: 'DeleteItem',
  BatchGet: 'BatchGetItem',
  BatchWrite: 'BatchWriteItem',
};

type Input = Record<string, unknown>;

/** The IAM view of one SDK command (`service` = the client's service, e.g. `dynamodb`). */
export function iamCallsOf(service: string, commandName: string, input: Input): AwsCall[] {
  const name = commandName.replace(/Command$/, '');
  switch (service) {
    case 'dynamodb': {
      if (name === 'TransactWrite' || name === 'TransactWriteItems') {
        // IAM checks each item's own action; there is no TransactWriteItems permission.
        const items = (input.TransactItems as Record<string, Input>[] | undefined) ?? [];
        return items.flatMap((item) =>
          Object.entries(item).map(([kind, body]) => ({
            action: `dynamodb:${kind === 'ConditionCheck' ? 'ConditionCheckItem' : `${kind}Item`}`,
            resource: arn.table(String(body.TableName)),
          })),
        );
      }
      return [
        {
          action: `dynamodb:${documentActions[name] ?? name}`,
          resource: arn.table(String(input.TableName)),
        },
      ];
    }
    case 's3': {
      const bucket = String(input.Bucket);
      if (name === 'ListObjectsV2' || name === 'ListObjects') {
        return [{ action: 's3:ListBucket', resource: `arn:aws:s3:::${bucket}` }];
      }
      const action = name === 'HeadObject' ? 'GetObject' : name;
      return [{ action: `s3:${action}`, resource: `arn:aws:s3:::${bucket}/${String(input.Key)}` }];
    }
    case 'iot': {
      let resource = '*';
      if (/^(Attach|Detach)(Policy|ThingPrincipal)$/.test(name)) {
        resource = String(input.target ?? input.principal);
      } else if (typeof input.thingName === 'string') {
        resource = arn.iot(`thing/${input.thingName}`);
      } else if (typeof input.certificateId === 'string') {
        resource = arn.iot(`cert/${input.certificateId}`);
      }
      return [{ action: `iot:${name}`, resource }];
    }
    case 'iotdata':
      return [{ action: 'iot:Publish', resource: arn.iot(`topic/${String(input.topic)}`) }];
    case 'states':
      return [
        {
          action: `states:${name}`,
          resource: String(input.stateMachineArn ?? input.executionArn ?? '*'),
        },
      ];
    default:
      throw new Error(`no IAM mapping for ${service}:${name}`);
  }
}

interface RecordableClient {
  readonly middlewareStack: {
    add(
      middleware: (
        next: (args: { input: unknown }) => Promise<unknown>,
        context: { commandName?: string },
      ) => (args: { input: unknown }) => Promise<unknown>,
      options: { step: 'initialize'; name: string; override?: boolean },
    ): void;
    remove(name: string): boolean;
  };
}

/** Records the calls of `clients` (module-level singletons) into `sink` until `stop()`. */
export function recordCalls(
  clients: readonly { service: string; client: RecordableClient }[],
  sink: AwsCall[],
): { stop(): void } {
  const name = 'iamCallRecorder';
  for (const { service, client } of clients) {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        sink.push(...iamCallsOf(service, context.commandName ?? '', args.input as Input));
        return next(args);
      },
      { step: 'initialize', name, override: true },
    );
  }
  return {
    stop() {
      for (const { client } of clients) client.middlewareStack.remove(name);
    },
  };
}
