/**
 * THE Amazon States Language definition of the ESM loop. infra/ deploys it with CDK, the
 * tests execute the very same JSON with aws-local-stepfunctions (Task states mapped to the
 * in-process handlers). States carry run ids and counters only; datasets, plans and
 * predictors stay in S3 and DynamoDB (the state payload limit is 256 KB).
 *
 *   Init -> Dispatch -> WaitForResults -> Collect -> BatchDone?
 *             ^  ^                           |  measuring: back to WaitForResults
 *             |  +------ redispatch ---------+  complete: Train
 *             |                                  Train -> Done? -- yes --> Succeeded
 *             +------------ Extend <-------------------------- no
 * Any task error -> MarkFailed (records the error on the run) -> Failed.
 */
/** The Lambda functions (keys of `functions` in lambdas/manifest.ts) the state machine calls. */
export const workflowTasks = [
  'workflowInit',
  'workflowDispatch',
  'workflowCollect',
  'workflowTrain',
  'workflowExtend',
  'workflowFail',
] as const;
export type WorkflowTask = (typeof workflowTasks)[number];

/** State names, exported so tests can map them to handlers and shorten the wait. */
export const states = {
  init: 'Init',
  dispatch: 'Dispatch',
  wait: 'WaitForResults',
  collect: 'Collect',
  batchDone: 'BatchDone?',
  train: 'Train',
  done: 'Done?',
  extend: 'Extend',
  markFailed: 'MarkFailed',
  succeeded: 'Succeeded',
  failed: 'Failed',
} as const;

/** Which Task state runs which function. */
export const taskOfState = {
  [states.init]: 'workflowInit',
  [states.dispatch]: 'workflowDispatch',
  [states.collect]: 'workflowCollect',
  [states.train]: 'workflowTrain',
  [states.extend]: 'workflowExtend',
  [states.markFailed]: 'workflowFail',
} as const satisfies Record<string, WorkflowTask>;

/**
 * Errors of the Lambda service itself and of throttled AWS calls inside a handler: worth
 * retrying with backoff. Everything else a handler throws is a named, permanent error
 * (`ValidationError`, `UnstableDeviceError`, `MeasurementTimeoutError`...) and goes to the
 * Catch, which records it on the run.
 */
export const transientErrors = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'ThrottlingException',
  'ProvisionedThroughputExceededException',
  'TransactionConflictException',
  'RequestLimitExceeded',
  'InternalServerError',
  'ServiceUnavailable',
] as const;

/**
 * Errors that end a run (classes of core/errors.ts; literal names because bundlers may
 * rename classes: bundle with esbuild `keepNames` so `error.name` survives).
 */
export const permanentErrors = [
  'ValidationError',
  'ArchValidationError',
  'UnknownSpaceError',
  'UnstableDeviceError',
  'MeasurementTimeoutError',
] as const;

export interface DefinitionOptions {
  /** Seconds between two polls of a measurement batch. @default 30 */
  readonly pollSeconds?: number;
  /** Seconds a single task may run (the training task needs the most). @default 900 */
  readonly taskTimeoutSeconds?: number;
  /** Whole-execution limit: a run that is still measuring after this fails. @default 604800 (7 days) */
  readonly executionTimeoutSeconds?: number;
}

const retry = [
  {
    ErrorEquals: [...transientErrors],
    IntervalSeconds: 2,
    MaxAttempts: 5,
    BackoffRate: 2,
    MaxDelaySeconds: 60,
    JitterStrategy: 'FULL',
  },
];

const catchToFail = [
  { ErrorEquals: [...permanentErrors], ResultPath: '$.error', Next: states.markFailed },
  { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: states.markFailed },
];

function task(resource: string, next: string, timeoutSeconds: number) {
  return {
    Type: 'Task',
    Resource: resource,
    TimeoutSeconds: timeoutSeconds,
    Retry: retry,
    Catch: catchToFail,
    Next: next,
  };
}

/**
 * The state machine for the given Lambda ARNs. Input of an execution:
 * `{ runId, thing, params }` (what `POST /runs` validated). Output: `{ runId, status, ... }`
 * of the last training step.
 */
export function buildDefinition(
  arns: Readonly<Record<WorkflowTask, string>>,
  options: DefinitionOptions = {},
) {
  const pollSeconds = options.pollSeconds ?? 30;
  const taskTimeout = options.taskTimeoutSeconds ?? 900;
  return {
    Comment:
      'ESM loop: sample, measure on the device, train, evaluate per depth bin, extend until converged',
    TimeoutSeconds: options.executionTimeoutSeconds ?? 7 * 24 * 3600,
    StartAt: states.init,
    States: {
      [states.init]: task(arns.workflowInit, states.dispatch, taskTimeout),
      [states.dispatch]: task(arns.workflowDispatch, states.wait, taskTimeout),
      [states.wait]: { Type: 'Wait', Seconds: pollSeconds, Next: states.collect },
      [states.collect]: task(arns.workflowCollect, states.batchDone, taskTimeout),
      [states.batchDone]: {
        Type: 'Choice',
        Choices: [
          { Variable: '$.batch', StringEquals: 'complete', Next: states.train },
          { Variable: '$.batch', StringEquals: 'redispatch', Next: states.dispatch },
        ],
        Default: states.wait,
      },
      [states.train]: task(arns.workflowTrain, states.done, taskTimeout),
      [states.done]: {
        Type: 'Choice',
        Choices: [{ Variable: '$.done', BooleanEquals: true, Next: states.succeeded }],
        Default: states.extend,
      },
      [states.extend]: task(arns.workflowExtend, states.dispatch, taskTimeout),
      [states.markFailed]: {
        Type: 'Task',
        Resource: arns.workflowFail,
        TimeoutSeconds: 60,
        Retry: retry,
        // Recording the failure is best effort: the execution fails either way.
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: null, Next: states.failed }],
        Next: states.failed,
      },
      [states.succeeded]: { Type: 'Succeed' },
      [states.failed]: {
        Type: 'Fail',
        Error: 'EsmRunFailed',
        Cause: 'A task failed; the run record (GET /runs/{id}) holds the error',
      },
    },
  };
}

export type StateMachineDefinition = ReturnType<typeof buildDefinition>;
