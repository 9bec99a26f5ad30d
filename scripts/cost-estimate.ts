/**
 * The AWS cost of one ESM run, derived from the deployed state machine definition: the
 * definition (lambdas/workflow/definition.ts) is executed with aws-local-stepfunctions and
 * task stubs that play a run of the given shape (iterations, polls per batch), and every
 * state it enters is counted as a billed Standard-workflow transition. The other services are
 * priced from the same run shape (samples, jobs, device messages). Prices: us-east-1 list
 * prices (December 2026 price pages); change them below for another region.
 *
 *   npx tsx scripts/cost-estimate.ts [--samples-per-second 0.2] [--iterations 4] ...
 */
import { parseArgs } from 'node:util';
import { StateMachine } from 'aws-local-stepfunctions';
import { functions } from '../lambdas/manifest.ts';
import { buildDefinition, states, workflowTasks } from '../lambdas/workflow/definition.ts';
import '../test/support/local-sfn.ts';

export const prices = {
  /** Step Functions Standard, per state transition. */
  transition: 0.000025,
  /** Lambda arm64, per GB-second and per request. */
  lambdaGbSecond: 0.0000133334,
  lambdaRequest: 0.0000002,
  /** IoT Core: per message (billed in 5 KB blocks) and per connection minute. */
  iotMessagePer5Kb: 0.000001,
  iotConnectionMinute: 0.00000008,
  /** IoT rules: per rule triggered and per action executed. */
  iotRule: 0.00000015,
  iotAction: 0.00000015,
  /** DynamoDB on-demand: per write and read request unit. */
  dynamoWrite: 0.000000625,
  dynamoRead: 0.000000125,
  /** S3 standard: per PUT and per GET. */
  s3Put: 0.000005,
  s3Get: 0.0000004,
  /** CloudWatch Logs ingestion per GB. */
  logsGb: 0.5,
} as const;

export interface RunShape {
  /** ESM iterations (train + evaluate); the default run stops at maxIter 4. */
  readonly iterations: number;
  readonly nInit: number;
  readonly nStep: number;
  /** Samples per job message (run parameter chunkSize). */
  readonly chunkSize: number;
  /** Device throughput: samples measured per second (a Raspberry Pi 5 and MobileNetV3: ~0.2). */
  readonly samplesPerSecond: number;
  /** Seconds between two polls of a batch (the definition's Wait). */
  readonly pollSeconds: number;
  /** Seconds one training Lambda runs (docs/BENCHMARKS.md, cloud sizing). */
  readonly trainSeconds: number;
  /** Seconds between two progress messages of a busy device (daemon default). */
  readonly progressSeconds: number;
}

export const typicalRun: RunShape = {
  iterations: 4,
  nInit: 100,
  nStep: 50,
  chunkSize: 10,
  samplesPerSecond: 0.2,
  pollSeconds: 30,
  trainSeconds: 60,
  progressSeconds: 5,
};

/** State transitions of one execution of the real definition for a run of `shape`. */
export async function countTransitions(shape: RunShape): Promise<Record<string, number>> {
  const arns = Object.fromEntries(
    workflowTasks.map((t) => [t, `arn:aws:lambda:us-east-1:123456789012:function:${t}`]),
  ) as Record<(typeof workflowTasks)[number], string>;
  const machine = new StateMachine(
    buildDefinition(arns, { pollSeconds: shape.pollSeconds }) as never,
  );
  const pollsOf = (iteration: number) =>
    Math.ceil(
      (iteration === 0 ? shape.nInit : shape.nStep) / shape.samplesPerSecond / shape.pollSeconds,
    );
  let polls = 0;
  type State = { runId: string; iteration: number };
  const execution = machine.run({ runId: 'estimate', params: {}, limits: {} } as never, {
    overrides: {
      taskResourceLocalHandlers: {
        [states.init]: () => ({ runId: 'estimate', iteration: 0 }),
        [states.dispatch]: (input) => input,
        [states.collect]: (input) => {
          const state = input as State;
          polls += 1;
          const complete = polls >= pollsOf(state.iteration);
          if (complete) polls = 0;
          return { ...state, batch: complete ? 'complete' : 'waiting' };
        },
        [states.train]: (input) => {
          const state = input as State;
          return { ...state, done: state.iteration + 1 >= shape.iterations };
        },
        [states.extend]: (input) => {
          const state = input as State;
          return { ...state, iteration: state.iteration + 1 };
        },
        [states.markFailed]: (input) => input,
      },
      waitTimeOverrides: { [states.wait]: 0 },
    },
  });
  const entered: Record<string, number> = {};
  const counting = (async () => {
    for await (const event of execution.eventLogs) {
      if (event.type === 'StateEntered') {
        const name = (event as { state: { name: string } }).state.name;
        entered[name] = (entered[name] ?? 0) + 1;
      }
    }
  })();
  await execution.result;
  await counting;
  return entered;
}

export interface CostLine {
  readonly service: string;
  readonly driver: string;
  readonly usd: number;
}

export async function estimate(shape: RunShape): Promise<{ lines: CostLine[]; total: number }> {
  const entered = await countTransitions(shape);
  const transitions = Object.values(entered).reduce((a, b) => a + b, 0);
  const samples = shape.nInit + shape.nStep * (shape.iterations - 1);
  const jobs =
    Math.ceil(shape.nInit / shape.chunkSize) +
    (shape.iterations - 1) * Math.ceil(shape.nStep / shape.chunkSize);
  const measuringSeconds = samples / shape.samplesPerSecond;
  const taskCalls = Object.entries(entered).filter(([name]) => name in taskStateMemory());
  let gbSeconds = 0;
  let requests = 0;
  for (const [name, count] of taskCalls) {
    const { memoryMb, seconds } = taskStateMemory()[name] ?? { memoryMb: 256, seconds: 0.3 };
    gbSeconds += (count * memoryMb * (name === states.train ? shape.trainSeconds : seconds)) / 1024;
    requests += count;
  }
  // Ingestion: one invocation per result, plus the status rule on every status message
  // (state changes and progress: the result timeout counts from a job's last progress).
  const progress = Math.ceil(measuringSeconds / shape.progressSeconds);
  gbSeconds += ((jobs + progress) * 256 * 0.3) / 1024;
  requests += jobs + progress + 2 * shape.iterations;
  // A job message carries up to chunkSize archs (~1 KB each): one 5 KB block per ~5 archs.
  const jobBlocks = jobs * Math.ceil(shape.chunkSize / 5);
  const messages = jobBlocks + jobs + progress + 4 * shape.iterations;
  const lines: CostLine[] = [
    {
      service: 'Step Functions',
      driver: `${transitions} state transitions`,
      usd: transitions * prices.transition,
    },
    {
      service: 'Lambda',
      driver: `${requests} invocations, ${gbSeconds.toFixed(0)} GB-s`,
      usd: gbSeconds * prices.lambdaGbSecond + requests * prices.lambdaRequest,
    },
    {
      service: 'IoT Core',
      driver: `${messages} messages, ${Math.ceil(measuringSeconds / 60)} connection minutes, ${2 * jobs + progress} rule runs`,
      usd:
        messages * prices.iotMessagePer5Kb +
        Math.ceil(measuringSeconds / 60) * prices.iotConnectionMinute +
        2 * jobs * (prices.iotRule + prices.iotAction),
    },
    {
      service: 'DynamoDB',
      // A progress message updates the run's progress time once.
      driver: `${samples * 3 + jobs * 2 + progress} writes, ${transitions * 2} reads`,
      usd:
        (samples * 3 + jobs * 2 + progress) * prices.dynamoWrite +
        transitions * 2 * prices.dynamoRead,
    },
    {
      service: 'S3',
      driver: `${shape.iterations * 4} PUTs, ${transitions} GETs`,
      usd: shape.iterations * 4 * prices.s3Put + transitions * prices.s3Get,
    },
    {
      service: 'CloudWatch Logs',
      driver: `~${(transitions * 4 + jobs * 2) / 1000} MB (state machine at level ALL, function logs)`,
      usd: (((transitions * 4 + jobs * 2) / 1e6) * prices.logsGb) as number,
    },
  ];
  return { lines, total: lines.reduce((sum, line) => sum + line.usd, 0) };
}

/** Memory and a typical duration of each Task state's function (lambdas/manifest.ts). */
function taskStateMemory(): Record<string, { memoryMb: number; seconds: number }> {
  const byTask: Record<string, keyof typeof functions> = {
    [states.init]: 'workflowInit',
    [states.dispatch]: 'workflowDispatch',
    [states.collect]: 'workflowCollect',
    [states.train]: 'workflowTrain',
    [states.extend]: 'workflowExtend',
  };
  return Object.fromEntries(
    Object.entries(byTask).map(([state, fn]) => [
      state,
      { memoryMb: (functions[fn] as { memoryMb?: number }).memoryMb ?? 256, seconds: 0.3 },
    ]),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: Object.fromEntries(
      Object.keys(typicalRun).map((key) => [
        key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`),
        { type: 'string' as const },
      ]),
    ),
  });
  const shape = { ...typicalRun } as Record<string, number>;
  for (const [flag, value] of Object.entries(values)) {
    const key = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (typeof value === 'string') shape[key] = Number(value);
  }
  const { lines, total } = await estimate(shape as unknown as RunShape);
  console.log(JSON.stringify(shape));
  for (const line of lines) {
    console.log(`${line.service.padEnd(16)} ${line.driver.padEnd(62)} $${line.usd.toFixed(4)}`);
  }
  console.log(`${'total'.padEnd(79)} $${total.toFixed(4)}`);
}
