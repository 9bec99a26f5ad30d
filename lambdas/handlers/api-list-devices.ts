/** GET /devices?limit=&cursor=: the registered devices, a page at a time (no secrets). */
import { z } from 'zod';
import { createDevicesTable, type DevicesTable } from '../adapters/devices-table.ts';
import { lazy, loadConfig } from '../config.ts';
import { apiHandler, parseWith } from '../middleware.ts';

export const listDevicesQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(100),
  cursor: z.string().min(1).optional(),
});

const defaultTable = lazy(
  (): DevicesTable => createDevicesTable({ tableName: loadConfig(['devicesTable']).devicesTable }),
);

export function createListDevicesHandler(table: () => DevicesTable = defaultTable) {
  return apiHandler(async (event) => {
    const query = parseWith(listDevicesQuery, event.queryStringParameters ?? {}, 'query');
    return { body: await table().list(query) };
  });
}

export const handler = createListDevicesHandler();
