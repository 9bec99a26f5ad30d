/**
 * The shared middy setup of every handler: the Powertools logger with the Lambda context,
 * zod parsing of the input, and error handling that differs by caller:
 * - Step Functions tasks THROW named errors (Retry/Catch in the definition match on
 *   `error.name`) and never turn an error into a return value;
 * - API handlers answer 4xx with the field to fix for bad input, 404 for unknown ids, and
 *   a bare 500 (details only in the log) for anything else.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { z } from 'zod';
import { EsmError, ValidationError } from '../core/errors.ts';

export const logger = new Logger({ serviceName: 'esm' });

/** An id in a request path that names nothing (answered with 404). */
export class NotFoundError extends EsmError {}

/** Request bodies larger than this are refused before parsing (API Gateway allows 10 MB). */
export const maxBodyBytes = 6 * 1024 * 1024;

/** `archs[3].ks` from zod's `['archs', 3, 'ks']`; `prefix` when the path is empty. */
export function fieldOf(path: readonly PropertyKey[], prefix: string): string {
  let field = prefix;
  for (const part of path) {
    if (typeof part === 'number') field += `[${part}]`;
    else field += field === '' ? String(part) : `.${String(part)}`;
  }
  return field;
}

/**
 * Parses `value` with `schema`, or throws `ValidationError` naming the first bad field
 * (relative to `prefix`, e.g. `body`).
 */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, prefix = ''): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  // A strict schema's unknown field is named itself (`body.colour`), not its parent object.
  const unknown = issue?.code === 'unrecognized_keys' ? issue.keys.slice(0, 1) : [];
  const field = fieldOf([...(issue?.path ?? []), ...unknown], prefix) || 'input';
  throw new ValidationError(field, issue?.message ?? 'invalid value', { cause: parsed.error });
}

/**
 * Runs `fn`; a `ValidationError` it throws is thrown again with its field under `prefix`
 * (`space` -> `body.space`), so API errors name the request field.
 */
export function underField<T>(prefix: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ValidationError && !error.field.startsWith(`${prefix}.`)) {
      throw error.restated(`${prefix}.${error.field}`, error.detail);
    }
    throw error;
  }
}

/**
 * A Step Functions task: the state input is parsed with `schema`; errors propagate with
 * their names so the state machine's Retry/Catch can tell them apart.
 */
export function workflowTask<S extends z.ZodType, R>(
  schema: S,
  fn: (input: z.infer<S>, context: Context) => Promise<R>,
) {
  return middy<unknown, R>()
    .use(injectLambdaContext(logger))
    .handler(async (event, context) => {
      const input = parseWith(schema, event);
      try {
        return await fn(input, context);
      } catch (error) {
        logger.error('task failed', { error: error as Error });
        throw error;
      }
    });
}

export interface ApiResponse {
  /** @default 200 */
  readonly statusCode?: number;
  readonly body: unknown;
}

function json(statusCode: number, body: unknown): APIGatewayProxyResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  };
}

/** The JSON body of an API request, parsed with `schema`; field names start with `body`. */
export function parseBody<S extends z.ZodType>(event: APIGatewayProxyEvent, schema: S): z.infer<S> {
  const raw =
    event.body === null || event.body === undefined
      ? ''
      : event.isBase64Encoded
        ? Buffer.from(event.body, 'base64').toString('utf8')
        : event.body;
  if (Buffer.byteLength(raw) > maxBodyBytes) {
    throw new ValidationError('body', `is larger than ${maxBodyBytes} bytes; send smaller batches`);
  }
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    throw new ValidationError('body', 'is not valid JSON; send a JSON object', { cause: error });
  }
  return parseWith(schema, value, 'body');
}

/** An API Gateway (REST, proxy integration) handler with the error mapping described above. */
export function apiHandler(
  fn: (event: APIGatewayProxyEvent, context: Context) => Promise<ApiResponse>,
) {
  return middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
    .use(injectLambdaContext(logger))
    .handler(async (event, context) => {
      try {
        const response = await fn(event, context);
        return json(response.statusCode ?? 200, response.body);
      } catch (error) {
        if (error instanceof ValidationError) {
          logger.info('bad request', { field: error.field, message: error.message });
          return json(400, { error: error.name, field: error.field, message: error.message });
        }
        if (error instanceof NotFoundError) {
          return json(404, { error: error.name, message: error.message });
        }
        logger.error('request failed', { error: error as Error });
        return json(500, { error: 'InternalError', requestId: context.awsRequestId });
      }
    });
}

/**
 * The query of a listing route (`GET /devices`, `GET /runs`): only `limit` (decimal digits,
 * 1-100) and `cursor` (the `next` of a previous page, at most 1 KB); any other parameter is
 * refused, so a misspelt one is not silently ignored.
 */
export const pageQuery = z.strictObject({
  limit: z
    .string()
    .regex(/^[0-9]{1,3}$/, 'use a whole number from 1 to 100')
    .transform(Number)
    .pipe(z.number().int().min(1, 'use a whole number from 1 to 100').max(100, 'at most 100'))
    .default(100),
  cursor: z.string().min(1).max(1024, 'is not a cursor this API returned').optional(),
});
