/** GET /devices?limit=&cursor=: the registered devices, a page at a time (no secrets). */
import { z } from 'zod';
import { createDevicesTable, type DevicesTable } from '../adapters/devices-table.ts';
import { lazy, loadConfig } from '../config.ts';
import { apiHandler, parseWith } from '../middleware.ts';

/**
 * Only `limit` (decimal digits, 1-100) and `cursor` (the `next` of a previous page, at most
 * 1 KB); any other parameter is refused, so a misspelt one is not silently ignored.
 */
export const listDevicesQuery = z.strictObject({
  limit: z
    .string()
    .regex(/^[0-9]{1,3}$/, 'use a whole number from 1 to 100')
    .transform(Number)
    .pipe(z.number().int().min(1, 'use a whole number from 1 to 100').max(100, 'at most 100'))
    .default(100),
  cursor: z.string().min(1).max(1024, 'is not a cursor this API returned').optional(),
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
