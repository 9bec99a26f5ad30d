/** GET /runs?limit=&cursor=: the runs, a page at a time, each where it stands (no history). */

import { documentClient } from '../adapters/dynamo.ts';
import { createRunsTable, type RunsTable } from '../adapters/runs-table.ts';
import { lazy, loadConfig } from '../config.ts';
import { apiHandler, pageQuery, parseWith } from '../middleware.ts';

const defaultTable = lazy((): RunsTable => {
  const { runsTable } = loadConfig(['runsTable']);
  return createRunsTable(
    documentClient(),
    () => runsTable,
    () => new Date().toISOString(),
  );
});

export function createListRunsHandler(table: () => RunsTable = defaultTable) {
  return apiHandler(async (event) => {
    const query = parseWith(pageQuery, event.queryStringParameters ?? {}, 'query');
    return { body: await table().list(query) };
  });
}

export const handler = createListRunsHandler();
