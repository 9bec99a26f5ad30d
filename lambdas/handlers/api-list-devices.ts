/** GET /devices?limit=&cursor=: the registered devices, a page at a time (no secrets). */
import { createDevicesTable, type DevicesTable } from '../adapters/devices-table.ts';
import { lazy, loadConfig } from '../config.ts';
import { apiHandler, pageQuery, parseWith } from '../middleware.ts';

const defaultTable = lazy(
  (): DevicesTable => createDevicesTable({ tableName: loadConfig(['devicesTable']).devicesTable }),
);

export function createListDevicesHandler(table: () => DevicesTable = defaultTable) {
  return apiHandler(async (event) => {
    const query = parseWith(pageQuery, event.queryStringParameters ?? {}, 'query');
    return { body: await table().list(query) };
  });
}

export const handler = createListDevicesHandler();
