/**
 * External services some tests need (moto server, mosquitto, chromium). Where a service is
 * missing the test is skipped with a printed reason, except when ESM_REQUIRE_SERVICES=1
 * (set by .ci/run): then the missing service fails the run, so CI cannot pass by skipping.
 */
import { spawnSync } from 'node:child_process';

export const requireServices = process.env.ESM_REQUIRE_SERVICES === '1';

/**
 * True when the service is usable. Otherwise prints why the dependent tests are skipped and
 * returns false, or throws under ESM_REQUIRE_SERVICES=1.
 */
export function serviceAvailable(name: string, available: boolean, fix: string): boolean {
  if (available) return true;
  const reason = `${name} is not available (${fix})`;
  if (requireServices) throw new Error(`ESM_REQUIRE_SERVICES=1 but ${reason}`);
  console.warn(`skipping the tests that need ${name}: ${reason}`);
  return false;
}

/** True when `command args` runs and exits 0. */
export function commandWorks(command: string, args: readonly string[]): boolean {
  const result = spawnSync(command, args, { stdio: 'ignore', timeout: 20_000 });
  return result.status === 0;
}
