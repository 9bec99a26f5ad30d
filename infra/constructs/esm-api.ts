import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  AccessLogFormat,
  AuthorizationType,
  EndpointType,
  JsonSchemaType,
  LambdaIntegration,
  LogGroupLogDestination,
  MethodLoggingLevel,
  type Model,
  type RequestValidator,
  type Resource,
  ResponseType,
  RestApi,
} from 'aws-cdk-lib/aws-apigateway';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import type { Route } from '../../lambdas/manifest.ts';

export interface EsmApiProps {
  /** The function serving each route (routes come from lambdas/manifest.ts). */
  readonly routes: ReadonlyArray<{ readonly route: Route; readonly handler: IFunction }>;
  /**
   * Steady-state requests per second for the whole stage.
   * @default 20
   */
  readonly rateLimit?: number;
  /** @default 40 */
  readonly burstLimit?: number;
}

/**
 * The REST API. Every method requires SigV4-signed requests (IAM authorisation): callers are
 * the team's own scripts and CI with IAM credentials, so access is granted and revoked with
 * IAM policies (`execute-api:Invoke` per route) and every call is attributable in CloudTrail,
 * which API keys (shared secrets, meant for usage plans) give neither of.
 */
export class EsmApi extends Construct {
  readonly api: RestApi;
  private readonly validator: RequestValidator;
  private readonly jsonObject: Model;

  constructor(scope: Construct, id: string, props: EsmApiProps) {
    super(scope, id);
    const accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.api = new RestApi(this, 'Api', {
      description: 'ESM platform: devices, ESM runs, latency predictors',
      endpointTypes: [EndpointType.REGIONAL],
      defaultMethodOptions: { authorizationType: AuthorizationType.IAM },
      // The logging role is an account-wide API Gateway setting that other APIs (and other
      // stages of this app) rely on too: deleting this stack must not unset it.
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      deployOptions: {
        stageName: 'v1',
        accessLogDestination: new LogGroupLogDestination(accessLogs),
        accessLogFormat: AccessLogFormat.jsonWithStandardFields(),
        loggingLevel: MethodLoggingLevel.ERROR,
        metricsEnabled: true,
        tracingEnabled: true,
        throttlingRateLimit: props.rateLimit ?? 20,
        throttlingBurstLimit: props.burstLimit ?? 40,
      },
    });
    this.validator = this.api.addRequestValidator('Validator', {
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    // The edge only rejects bodies that are not JSON objects; the handlers' zod schemas name
    // the offending field, which a gateway model error would not.
    this.jsonObject = this.api.addModel('JsonObject', {
      contentType: 'application/json',
      schema: { type: JsonSchemaType.OBJECT },
    });
    this.api.addGatewayResponse('BadBody', {
      type: ResponseType.BAD_REQUEST_BODY,
      statusCode: '400',
      templates: {
        'application/json':
          '{"error":"ValidationError","message":"$context.error.validationErrorString"}',
      },
    });
    for (const { route, handler } of props.routes) this.addRoute(route, handler);
    NagSuppressions.addResourceSuppressions(
      this.api,
      [
        {
          id: 'AwsSolutions-APIG3',
          reason:
            'Every method needs SigV4 (IAM) credentials and the stage is throttled; a WAF web ' +
            'ACL adds cost without protecting more. Attach one for public exposure (docs/cloud.md).',
        },
        {
          id: 'AwsSolutions-COG4',
          reason: 'Callers authenticate with IAM (SigV4), not Cognito user pools: see EsmApi.',
        },
        {
          id: 'AwsSolutions-IAM4',
          reason:
            'The account-level API Gateway logging role uses the AWS managed policy ' +
            'AmazonAPIGatewayPushToCloudWatchLogs, made for exactly this.',
          appliesTo: [
            'Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs',
          ],
        },
      ],
      true,
    );
  }

  /** Base URL of the stage, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com/v1/`. */
  get url(): string {
    return this.api.url;
  }

  /** The ARN pattern callers need `execute-api:Invoke` on. */
  invokeArn(method = '*', path = '/*'): string {
    return Stack.of(this).formatArn({
      service: 'execute-api',
      resource: this.api.restApiId,
      resourceName: `${this.api.deploymentStage.stageName}/${method}${path}`,
    });
  }

  private addRoute(route: Route, handler: IFunction): void {
    const [method, path] = route.split(' ') as [string, string];
    let resource: Resource = this.api.root as Resource;
    const pathParameters: Record<string, boolean> = {};
    for (const part of path.split('/').filter((p) => p !== '')) {
      resource = (resource.getResource(part) as Resource | undefined) ?? resource.addResource(part);
      const parameter = /^\{(.+)\}$/.exec(part)?.[1];
      if (parameter !== undefined) pathParameters[`method.request.path.${parameter}`] = true;
    }
    const hasBody = method === 'POST' || method === 'PUT';
    resource.addMethod(method, new LambdaIntegration(handler), {
      authorizationType: AuthorizationType.IAM,
      requestValidator: this.validator,
      requestParameters: pathParameters,
      requestModels: hasBody ? { 'application/json': this.jsonObject } : undefined,
    });
  }
}
