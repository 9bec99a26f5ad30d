/**
 * Running the workflow's state machine definition in-process with aws-local-stepfunctions:
 * every Task state mapped to its handler, invoked the way Lambda would (event, context).
 * `esm run` and the tests use it.
 */
import type { Context } from 'aws-lambda';

// aws-local-stepfunctions@3 uses Promise.withResolvers (Node 22+); Node 20 lacks it.
const promiseStatics = Promise as unknown as { withResolvers?: unknown };
promiseStatics.withResolvers ??= <T>() => {
  let resolve!: (value: T | PromiseLike<T>) => void;
  let reject!: (reason?: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

/** A Lambda context good enough for middy and the Powertools logger. */
export function lambdaContext(functionName: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '256',
    awsRequestId: `req-${Math.random().toString(36).slice(2, 10)}`,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => 60_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

type LambdaHandler = (event: never, context: Context) => Promise<unknown>;

/** `(input) => handler(input, context)` for `taskResourceLocalHandlers`. */
export function asTask(name: string, handler: LambdaHandler) {
  // biome-ignore lint/suspicious/noExplicitAny: the engine's JSONValue in, the handler's output out
  return async (input: any) => {
    const output = await handler(input as never, lambdaContext(name));
    // ESM_TRACE_SFN=1 prints every task's input and output (debugging a stuck execution).
    if (process.env.ESM_TRACE_SFN === '1') {
      const shown = JSON.stringify(input).slice(0, 300);
      console.error(new Date().toISOString(), name, shown, '->', JSON.stringify(output));
    }
    // biome-ignore lint/suspicious/noExplicitAny: see above
    return output as any;
  };
}
