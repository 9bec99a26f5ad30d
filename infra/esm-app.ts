import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, type AppProps, Aspects, Tags } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { StatefulStack } from './stateful-stack.ts';
import { StatelessStack } from './stateless-stack.ts';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface EsmAppOptions {
  /**
   * Bundle the handlers with esbuild; false uses inline placeholders (assertion tests).
   * Also settable with `-c esm:bundle=false`.
   * @default true
   */
  readonly bundle?: boolean;
  /**
   * Prefix of the stack names, so several copies (stages) can live in one account.
   * Also settable with `-c esm:prefix=...`.
   * @default 'Esm'
   */
  readonly prefix?: string;
  /** Extra `App` properties (outdir, context). */
  readonly appProps?: AppProps;
}

/**
 * Feature flags fixed in code rather than cdk.json, so that tests (which build the app
 * without the CLI) synthesise the same template as `cdk synth`.
 */
const featureFlags = {
  '@aws-cdk/aws-iam:minimizePolicies': true,
  '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true,
  '@aws-cdk/aws-lambda-nodejs:useLatestRuntimeVersion': false,
  '@aws-cdk/core:target-partitions': ['aws', 'aws-cn'],
  // The stateless stack reads the bucket and table names through CloudFormation exports.
  '@aws-cdk/core:defaultCrossStackReferences': 'strong',
};

/** The ESM platform: a stateful and a stateless stack, checked by cdk-nag AwsSolutions. */
export function createEsmApp(options: EsmAppOptions = {}) {
  const app = new App({
    ...options.appProps,
    context: { ...featureFlags, ...options.appProps?.context },
  });
  const contextBundle = app.node.tryGetContext('esm:bundle');
  const bundle = options.bundle ?? !(contextBundle === false || contextBundle === 'false');
  const prefix: string = options.prefix ?? app.node.tryGetContext('esm:prefix') ?? 'Esm';
  const iotDataEndpoint: string | undefined = app.node.tryGetContext('esm:iotDataEndpoint');
  const env = {
    account: process.env.CDK_DEFAULT_ACCOUNT,
    region: process.env.CDK_DEFAULT_REGION,
  };
  const stateful = new StatefulStack(app, `${prefix}Stateful`, {
    env,
    description: 'ESM platform: datasets, predictors and run state (retained)',
  });
  const stateless = new StatelessStack(app, `${prefix}Stateless`, {
    env,
    description: 'ESM platform: functions, state machine, IoT and API',
    bucket: stateful.bucket,
    tables: stateful.tables,
    code: { bundle, projectRoot },
    iotDataEndpoint,
  });
  Tags.of(app).add('project', 'esm-platform');
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return { app, stateful, stateless };
}
