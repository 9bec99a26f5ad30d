/**
 * The public measured datasets some tests read from `../shared/data/` beside the checkout
 * (../shared/data/README.md; never copied into the repository). In a clone without that
 * folder those tests are skipped with a printed reason, or fail under ESM_REQUIRE_SERVICES=1
 * (set by .ci/run), as a missing service does (services.ts).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { serviceAvailable } from './services.ts';

/** The absolute path of `../shared/data/FILE`, FILE e.g. `nb201/pixel3.jsonl`. */
export function sharedDataPath(file: string): string {
  return fileURLToPath(new URL(`../../../shared/data/${file}`, import.meta.url));
}

/** True when `../shared/data/FILE` exists; otherwise says why its tests skip (or throws in CI). */
export function sharedDataAvailable(file: string): boolean {
  const path = sharedDataPath(file);
  return serviceAvailable(
    `the public dataset ${path}`,
    existsSync(path),
    'the tests read ../shared/data/ beside the checkout; see ../shared/data/README.md',
  );
}
