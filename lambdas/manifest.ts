/**
 * The contract between the Lambda handlers (lambdas/handlers/) and the CDK app (infra/):
 * every function, its entry file, the environment it reads and the access it needs. The
 * infrastructure grants exactly what is listed here, nothing more.
 */

/** Environment variables the handlers read (parsed once with zod in lambdas/config.ts). */
export const envNames = {
  bucket: 'ESM_BUCKET',
  runsTable: 'ESM_RUNS_TABLE',
  iterationsTable: 'ESM_ITERATIONS_TABLE',
  samplesTable: 'ESM_SAMPLES_TABLE',
  devicesTable: 'ESM_DEVICES_TABLE',
  stateMachineArn: 'ESM_STATE_MACHINE_ARN',
  iotDataEndpoint: 'ESM_IOT_DATA_ENDPOINT',
  thingType: 'ESM_THING_TYPE',
  devicePolicy: 'ESM_DEVICE_POLICY',
} as const;
export type EnvName = keyof typeof envNames;

/** Access a function needs; infra/ turns each into a least-privilege grant. */
export type Access =
  | 'bucket:read'
  | 'bucket:write'
  | 'runs:read'
  | 'runs:write'
  | 'iterations:read'
  | 'iterations:write'
  | 'samples:read'
  | 'samples:write'
  | 'devices:read'
  | 'devices:write'
  | 'iot:publish-jobs'
  | 'iot:register-device'
  | 'iot:rotate-certificate'
  | 'iot:delete-device'
  | 'iot:clean-fleet'
  | 'states:start';

/** An API Gateway route, e.g. `GET /runs/{id}`. */
export type Route = `${'GET' | 'POST' | 'PUT' | 'DELETE'} /${string}`;

export interface FunctionSpec {
  /** Path of the handler module relative to the repository root; it exports `handler`. */
  readonly entry: string;
  /** The API route served by this function (proxy integration, IAM-authorised). */
  readonly route?: Route;
  readonly description: string;
  readonly env: readonly EnvName[];
  readonly access: readonly Access[];
  /** @default 256 */
  readonly memoryMb?: number;
  /** @default 30 */
  readonly timeoutSeconds?: number;
  /**
   * Packages esbuild cannot inline (native addons such as onnxruntime-node): kept external and
   * copied from node_modules into the function's asset; list their runtime dependencies too.
   * @default []
   */
  readonly nodeModules?: readonly string[];
  /**
   * Files (paths from the repository root) the bundle reads at run time, copied next to it,
   * e.g. the tfjs WebAssembly binaries.
   * @default []
   */
  readonly assets?: readonly string[];
}

const tables = ['runsTable', 'iterationsTable', 'samplesTable'] as const;

export const functions = {
  // Tasks of the ESM state machine (lambdas/workflow/definition.ts).
  workflowInit: {
    entry: 'lambdas/handlers/workflow-init.ts',
    description: 'Validate run parameters, record the run, plan the initial samples',
    env: ['bucket', ...tables],
    access: ['bucket:read', 'bucket:write', 'runs:read', 'runs:write', 'samples:write'],
  },
  workflowDispatch: {
    entry: 'lambdas/handlers/workflow-dispatch.ts',
    description: 'Publish the unmeasured samples of the current batch to the device jobs topic',
    env: ['bucket', 'iotDataEndpoint', ...tables],
    access: ['bucket:read', 'runs:read', 'runs:write', 'samples:read', 'iot:publish-jobs'],
  },
  workflowCollect: {
    entry: 'lambdas/handlers/workflow-collect.ts',
    description: 'Poll: are all samples of the batch measured? re-dispatch after a timeout',
    env: ['bucket', ...tables],
    access: ['runs:read', 'runs:write', 'samples:read'],
  },
  workflowTrain: {
    entry: 'lambdas/handlers/workflow-train.ts',
    description: 'Train the predictor on the measured samples, evaluate per depth bin, store it',
    env: ['bucket', ...tables],
    access: [
      'bucket:read',
      'bucket:write',
      'runs:read',
      'runs:write',
      'samples:read',
      'iterations:write',
    ],
    memoryMb: 2048,
    timeoutSeconds: 900,
    // Read at run time by the WebAssembly backend of tfjs, next to the bundle (no threads in Node).
    assets: [
      'node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm',
      'node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm',
    ],
  },
  workflowExtend: {
    entry: 'lambdas/handlers/workflow-extend.ts',
    description: 'Plan the next batch, weighted towards the depth bins below the threshold',
    env: ['bucket', ...tables],
    access: ['bucket:read', 'runs:read', 'runs:write', 'samples:read', 'samples:write'],
  },
  workflowFail: {
    entry: 'lambdas/handlers/workflow-fail.ts',
    description: 'Catch target: record the failed task error on the run',
    env: [...tables],
    access: ['runs:read', 'runs:write'],
  },
  // IoT topic rule target for esm/devices/+/results.
  ingestResults: {
    entry: 'lambdas/handlers/ingest-results.ts',
    description: 'Validate a device result and record each latency once (idempotent)',
    env: ['bucket', ...tables, 'devicesTable'],
    // runs:write: the run's measured counter moves in the same transaction as each sample.
    access: ['runs:read', 'runs:write', 'samples:read', 'samples:write', 'devices:write'],
  },
  // IoT topic rule target for esm/devices/+/status (state changes only, not progress).
  ingestStatus: {
    entry: 'lambdas/handlers/ingest-status.ts',
    description:
      "Record a device's state (online, idle, offline, error) and facts on its record, and its progress on a run's jobs",
    env: ['devicesTable', 'runsTable', 'samplesTable'],
    access: [
      'devices:read',
      'devices:write',
      'runs:read',
      'runs:write',
      'samples:read',
      'samples:write',
    ],
  },
  // CloudFormation custom resource: deregisters every device when the stack is deleted.
  fleetCleanup: {
    entry: 'lambdas/handlers/fleet-cleanup.ts',
    description: 'On stack delete: deregister every device so the IoT policy and thing type go',
    env: ['devicesTable', 'thingType', 'devicePolicy'],
    access: ['devices:write', 'iot:clean-fleet'],
    timeoutSeconds: 900,
  },
  // API Gateway routes.
  apiRegisterDevice: {
    entry: 'lambdas/handlers/api-register-device.ts',
    route: 'POST /devices',
    description: 'POST /devices: create thing, certificate and policy attachment',
    env: ['devicesTable', 'thingType', 'devicePolicy', 'iotDataEndpoint'],
    access: ['devices:write', 'iot:register-device'],
  },
  apiDeleteDevice: {
    entry: 'lambdas/handlers/api-delete-device.ts',
    route: 'DELETE /devices/{thing}',
    description: 'DELETE /devices/{thing}: retire its certificates, delete the thing and record',
    env: ['devicesTable', 'thingType', 'devicePolicy'],
    access: ['devices:read', 'devices:write', 'iot:delete-device'],
  },
  apiRotateCertificate: {
    entry: 'lambdas/handlers/api-rotate-certificate.ts',
    route: 'POST /devices/{thing}/certificate',
    description: 'POST /devices/{thing}/certificate: issue a new certificate, retire the old',
    env: ['devicesTable', 'thingType', 'devicePolicy', 'iotDataEndpoint'],
    access: ['devices:read', 'devices:write', 'iot:rotate-certificate'],
  },
  apiListDevices: {
    entry: 'lambdas/handlers/api-list-devices.ts',
    route: 'GET /devices',
    description: 'GET /devices',
    env: ['devicesTable'],
    access: ['devices:read'],
  },
  apiStartRun: {
    entry: 'lambdas/handlers/api-start-run.ts',
    route: 'POST /runs',
    description: 'POST /runs: validate parameters and start an ESM execution',
    env: ['stateMachineArn', 'devicesTable', 'runsTable', 'bucket'],
    // bucket:read: a replay's pool is read before the execution starts.
    access: ['states:start', 'devices:read', 'runs:write', 'bucket:read'],
  },
  apiListRuns: {
    entry: 'lambdas/handlers/api-list-runs.ts',
    route: 'GET /runs',
    description: 'GET /runs: the runs, a page at a time, for esm cloud run list',
    env: ['runsTable'],
    access: ['runs:read'],
  },
  apiGetRun: {
    entry: 'lambdas/handlers/api-get-run.ts',
    route: 'GET /runs/{id}',
    description: 'GET /runs/{id}: status, iteration history and per-bin accuracy',
    env: ['runsTable', 'iterationsTable'],
    access: ['runs:read', 'iterations:read'],
  },
  apiPredict: {
    entry: 'lambdas/handlers/api-predict.ts',
    route: 'POST /predict',
    description: 'POST /predict: batch latency prediction with the ONNX predictor',
    env: ['bucket'],
    access: ['bucket:read'],
    memoryMb: 1024,
    nodeModules: ['onnxruntime-node', 'onnxruntime-common'],
  },
  apiListPredictors: {
    entry: 'lambdas/handlers/api-list-predictors.ts',
    route: 'GET /predictors',
    description: 'GET /predictors',
    env: ['bucket'],
    access: ['bucket:read'],
  },
  apiGetPredictor: {
    entry: 'lambdas/handlers/api-get-predictor.ts',
    route: 'GET /predictors/{id}',
    description: 'GET /predictors/{id}: the files of one predictor, for esm cloud predictor pull',
    env: ['bucket'],
    access: ['bucket:read'],
  },
} as const satisfies Record<string, FunctionSpec>;

export type FunctionName = keyof typeof functions;

/** Key schemas of the DynamoDB tables (all string keys unless noted). */
export const tableKeys = {
  runsTable: { partitionKey: 'runId' },
  iterationsTable: { partitionKey: 'runId', sortKey: 'iteration', sortKeyType: 'number' },
  samplesTable: { partitionKey: 'runId', sortKey: 'sampleId' },
  devicesTable: { partitionKey: 'thing' },
} as const;

/** MQTT topic filter of device results, routed by the IoT topic rule to `ingestResults`. */
export const resultsTopicFilter = 'esm/devices/+/results';

/**
 * MQTT topic filter of device status messages, routed to `ingestStatus`; progress updates
 * (`state = 'busy'`, up to one a second) are filtered out in the rule.
 */
export const statusTopicFilter = 'esm/devices/+/status';
