/**
 * The handlers' environment, parsed once with zod at start. A missing or empty variable
 * fails fast with its name, so a misconfigured deployment shows up on the first
 * invocation with a message that says what to set, not as an SDK error deep in a call.
 */
import { z } from 'zod';
import { ValidationError } from '../core/errors.ts';
import { type EnvName, envNames } from './manifest.ts';

export type Config<K extends EnvName> = { readonly [P in K]: string };

const value = z.string().trim().min(1, 'must be set to a non-empty value');

/**
 * Reads the variables `names` (keys of `envNames` in lambdas/manifest.ts) from `env`.
 * @throws ValidationError naming the first variable that is missing or empty.
 */
export function loadConfig<K extends EnvName>(
  names: readonly K[],
  env: NodeJS.ProcessEnv = process.env,
): Config<K> {
  const config: Partial<Record<K, string>> = {};
  for (const name of names) {
    const variable = envNames[name];
    const parsed = value.safeParse(env[variable]);
    if (!parsed.success) {
      throw new ValidationError(
        variable,
        `environment variable is missing or empty; the deployment (infra/) sets it for ${name}`,
      );
    }
    config[name] = parsed.data;
  }
  return config as Config<K>;
}

/**
 * Optional settings outside the infra contract: where the job publisher sends jobs when it
 * is not IoT Core (local mode and the end-to-end test use an MQTT broker).
 */
export const transportEnv = z.object({
  /** MQTT broker URL (`mqtt://host:port`); when set, jobs are published there over MQTT. */
  ESM_MQTT_URL: z.url().optional(),
});

/** Lazily evaluated: a module-level `const config = lazy(() => loadConfig(...))`. */
export function lazy<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => {
    made ??= { value: make() };
    return made.value;
  };
}
