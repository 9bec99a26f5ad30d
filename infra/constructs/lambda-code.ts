import { existsSync } from 'node:fs';
import path from 'node:path';
import { Code } from 'aws-cdk-lib/aws-lambda';
import { type BundlingOptions, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import type { FunctionSpec } from '../../lambdas/manifest.ts';

/** How the Lambda code is produced. */
export interface CodeOptions {
  /**
   * Bundle each handler with the local esbuild. False puts an inline placeholder in its
   * place, so assertion tests neither need the handler files nor spend seconds bundling.
   * @default true
   */
  readonly bundle?: boolean;
  /** Repository root (holds package.json and package-lock.json). */
  readonly projectRoot: string;
}

/** The NodejsFunction properties that say where the code comes from. */
export interface HandlerCode {
  readonly entry?: string;
  readonly code?: Code;
  readonly handler: string;
  readonly depsLockFilePath?: string;
  readonly projectRoot?: string;
  readonly bundling?: BundlingOptions;
}

/** Lambda runs linux; other platforms' onnxruntime binaries would only add package size. */
const unusedNativeBinaries = [
  'onnxruntime-node/bin/napi-v6/darwin',
  'onnxruntime-node/bin/napi-v6/win32',
  'onnxruntime-node/bin/napi-v6/linux/x64',
];

/** ESM output still meets CommonJS dependencies that use require() and __dirname. */
const esmBanner = [
  "import { createRequire as __esmRequire } from 'node:module';",
  "import { fileURLToPath as __esmPath } from 'node:url';",
  "import { dirname as __esmDirname } from 'node:path';",
  'const require = __esmRequire(import.meta.url);',
  'const __filename = __esmPath(import.meta.url);',
  'const __dirname = __esmDirname(__filename);',
].join(' ');

/** Where the code of one manifest function comes from: a local esbuild bundle or a placeholder. */
export function handlerCode(spec: FunctionSpec, options: CodeOptions): HandlerCode {
  if (options.bundle === false) {
    return {
      code: Code.fromInline('exports.handler = async () => { throw new Error("placeholder"); };'),
      handler: 'index.handler',
    };
  }
  const entry = path.join(options.projectRoot, spec.entry);
  if (!existsSync(entry)) {
    throw new Error(
      `${spec.entry}: handler file not found; write it, or synthesise with -c esm:bundle=false`,
    );
  }
  return {
    entry,
    handler: 'handler',
    projectRoot: options.projectRoot,
    depsLockFilePath: path.join(options.projectRoot, 'package-lock.json'),
    bundling: bundlingOptions(spec, options.projectRoot),
  };
}

function bundlingOptions(spec: FunctionSpec, projectRoot: string): BundlingOptions {
  const nodeModules = spec.nodeModules ?? [];
  const assets = spec.assets ?? [];
  const copy = (output: string): string[] => [
    ...(nodeModules.length > 0 ? [`mkdir -p "${output}/node_modules"`] : []),
    ...nodeModules.map(
      (name) => `cp -R "${path.join(projectRoot, 'node_modules', name)}" "${output}/node_modules/"`,
    ),
    ...(nodeModules.length > 0
      ? unusedNativeBinaries.map((dir) => `rm -rf "${output}/node_modules/${dir}"`)
      : []),
    ...assets.map((file) => `cp "${path.join(projectRoot, file)}" "${output}/"`),
  ];
  return {
    forceDockerBundling: false,
    format: OutputFormat.ESM,
    target: 'node22',
    mainFields: ['module', 'main'],
    minify: true,
    // Step Functions Retry/Catch match error class names (lambdas/workflow/definition.ts).
    keepNames: true,
    sourceMap: true,
    banner: esmBanner,
    // The SDK goes into the bundle rather than coming from the runtime, so the deployed code
    // runs the SDK version the tests ran against moto.
    bundleAwsSDK: true,
    externalModules: [...nodeModules],
    commandHooks: {
      beforeBundling: () => [],
      beforeInstall: () => [],
      afterBundling: (_input: string, output: string) => copy(output),
    },
  };
}
