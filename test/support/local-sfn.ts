/**
 * Test helpers around local/sfn.ts (the in-process state machine runner of `esm run`): the
 * Lambda context and task wrapper, and API Gateway events.
 */
export { asTask, lambdaContext } from '../../local/sfn.ts';

/** An API Gateway (REST, proxy) event. */
export function apiEvent(options: {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  pathParameters?: Record<string, string>;
}) {
  return {
    httpMethod: options.method,
    path: options.path,
    resource: options.path,
    body:
      options.body === undefined
        ? null
        : typeof options.body === 'string'
          ? options.body
          : JSON.stringify(options.body),
    isBase64Encoded: false,
    headers: { 'content-type': 'application/json' },
    multiValueHeaders: {},
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: options.pathParameters ?? null,
    stageVariables: null,
    requestContext: {} as never,
  };
}
