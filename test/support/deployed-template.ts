/**
 * A synthesised CDK app "deployed" on paper: every CloudFormation intrinsic (Ref, Fn::GetAtt,
 * Fn::Join, Fn::Sub, Fn::ImportValue) in the templates is resolved to the concrete name or
 * ARN the resource would get in one account and region, so IAM policies and Lambda
 * environments can be read as AWS evaluates them. Physical names are made up from the logical
 * ids (deterministic), in the account and region moto uses, so a test can create the same
 * names in the emulator.
 */
import type { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';

type Json = Record<string, unknown>;
interface Resource {
  readonly Type: string;
  readonly Properties?: Json;
}
interface TemplateJson {
  readonly Resources: Record<string, Resource>;
  readonly Outputs?: Record<string, { Value: unknown; Export?: { Name: unknown } }>;
}

/** moto's default account and region (its ARNs use them). */
export const account = '123456789012';
export const region = 'us-east-1';

/** How the made-up physical names and attributes of each resource type look. */
function physicalName(stackName: string, logicalId: string, type: string): string {
  const name = `${stackName}-${logicalId}`;
  // S3 bucket names are lower case and at most 63 characters.
  return type === 'AWS::S3::Bucket' ? name.toLowerCase().slice(0, 63) : name;
}

function arnOf(type: string, name: string): string {
  const at = `${region}:${account}`;
  switch (type) {
    case 'AWS::DynamoDB::Table':
      return `arn:aws:dynamodb:${at}:table/${name}`;
    case 'AWS::S3::Bucket':
      return `arn:aws:s3:::${name}`;
    case 'AWS::IAM::Role':
      return `arn:aws:iam::${account}:role/${name}`;
    case 'AWS::Lambda::Function':
      return `arn:aws:lambda:${at}:function:${name}`;
    case 'AWS::StepFunctions::StateMachine':
      return `arn:aws:states:${at}:stateMachine:${name}`;
    case 'AWS::Logs::LogGroup':
      return `arn:aws:logs:${at}:log-group:${name}:*`;
    case 'AWS::SQS::Queue':
      return `arn:aws:sqs:${at}:${name}`;
    case 'AWS::SNS::Topic':
      return `arn:aws:sns:${at}:${name}`;
    case 'AWS::IoT::TopicRule':
      return `arn:aws:iot:${at}:rule/${name}`;
    case 'AWS::IoT::Policy':
      return `arn:aws:iot:${at}:policy/${name}`;
    default:
      return `arn:aws:unknown:${at}:${type}/${name}`;
  }
}

/** `Ref` of a resource: its name, or its ARN/URL where CloudFormation returns that. */
function refOf(type: string, name: string): string {
  switch (type) {
    case 'AWS::StepFunctions::StateMachine':
    case 'AWS::SNS::Topic':
      return arnOf(type, name);
    case 'AWS::SQS::Queue':
      return `https://sqs.${region}.amazonaws.com/${account}/${name}`;
    default:
      return name;
  }
}

export class DeployedApp {
  private readonly templates = new Map<string, TemplateJson>();
  private readonly exports = new Map<string, { stack: string; value: unknown }>();

  constructor(stacks: readonly Stack[]) {
    for (const stack of stacks) {
      const template = Template.fromStack(stack).toJSON() as TemplateJson;
      this.templates.set(stack.stackName, template);
      for (const output of Object.values(template.Outputs ?? {})) {
        if (output.Export === undefined) continue;
        const name = this.resolve(stack.stackName, output.Export.Name);
        this.exports.set(String(name), { stack: stack.stackName, value: output.Value });
      }
    }
  }

  template(stackName: string): TemplateJson {
    const template = this.templates.get(stackName);
    if (template === undefined) throw new Error(`no stack ${stackName}`);
    return template;
  }

  /** The physical name a resource of `stackName` gets. */
  nameOf(stackName: string, logicalId: string): string {
    const resource = this.template(stackName).Resources[logicalId];
    if (resource === undefined) throw new Error(`no resource ${logicalId} in ${stackName}`);
    return physicalName(stackName, logicalId, resource.Type);
  }

  /** `value` with every intrinsic replaced by its concrete value. */
  resolve(stackName: string, value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(stackName, v));
    if (value === null || typeof value !== 'object') return value;
    const object = value as Json;
    const keys = Object.keys(object);
    if (keys.length === 1) {
      const [key] = keys as [string];
      const arg = object[key];
      switch (key) {
        case 'Ref':
          return this.ref(stackName, String(arg));
        case 'Fn::GetAtt':
          return this.getAtt(stackName, arg as [string, string]);
        case 'Fn::Join': {
          const [separator, parts] = arg as [string, unknown[]];
          return (this.resolve(stackName, parts) as unknown[]).map(String).join(separator);
        }
        case 'Fn::Sub':
          return String(typeof arg === 'string' ? arg : (arg as [string])[0]).replace(
            /\$\{([^}]+)\}/g,
            (_, name: string) => String(this.ref(stackName, name)),
          );
        case 'Fn::ImportValue': {
          const name = String(this.resolve(stackName, arg));
          const exported = this.exports.get(name);
          if (exported === undefined) throw new Error(`no export ${name}`);
          return this.resolve(exported.stack, exported.value);
        }
        default:
          break;
      }
    }
    return Object.fromEntries(keys.map((k) => [k, this.resolve(stackName, object[k])]));
  }

  private ref(stackName: string, name: string): unknown {
    if (name === 'AWS::Partition') return 'aws';
    if (name === 'AWS::Region') return region;
    if (name === 'AWS::AccountId') return account;
    if (name === 'AWS::URLSuffix') return 'amazonaws.com';
    if (name === 'AWS::StackName') return stackName;
    const resource = this.template(stackName).Resources[name];
    if (resource === undefined) throw new Error(`Ref to unknown ${name} in ${stackName}`);
    return refOf(resource.Type, physicalName(stackName, name, resource.Type));
  }

  private getAtt(stackName: string, [logicalId, attribute]: [string, string]): unknown {
    const resource = this.template(stackName).Resources[logicalId];
    if (resource === undefined) throw new Error(`GetAtt of unknown ${logicalId}`);
    const name = physicalName(stackName, logicalId, resource.Type);
    if (attribute === 'Arn') return arnOf(resource.Type, name);
    if (resource.Type === 'Custom::AWS') return `${logicalId}.${attribute}`;
    return `${name}.${attribute}`;
  }

  /** Every Lambda function of a stack with its resolved environment and role policies. */
  lambdas(stackName: string): DeployedLambda[] {
    const resources = this.template(stackName).Resources;
    return Object.entries(resources)
      .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
      .map(([logicalId, r]) => {
        const props = r.Properties ?? {};
        const roleAtt = (props.Role as { 'Fn::GetAtt'?: [string, string] })['Fn::GetAtt'];
        const roleId = roleAtt?.[0] ?? '';
        const env = this.resolve(
          stackName,
          (props.Environment as { Variables?: Json } | undefined)?.Variables ?? {},
        ) as Record<string, string>;
        const policies = Object.entries(resources)
          .filter(
            ([, p]) =>
              p.Type === 'AWS::IAM::Policy' &&
              ((p.Properties?.Roles as unknown[]) ?? []).some(
                (role) => (role as { Ref?: string }).Ref === roleId,
              ),
          )
          .map(([policyId, p]) => ({
            name: policyId,
            policy: this.resolve(stackName, p.Properties?.PolicyDocument),
          }));
        return { logicalId, roleId, env, policies };
      });
  }
}

export interface DeployedLambda {
  readonly logicalId: string;
  readonly roleId: string;
  /** The function's environment variables, resolved. */
  readonly env: Record<string, string>;
  /** The inline policies attached to its role, resolved. */
  readonly policies: { name: string; policy: unknown }[];
}
