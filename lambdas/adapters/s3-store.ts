/**
 * `DatasetStore` (core/ports.ts) on S3. Path-style addressing so the same code works against
 * AWS, LocalStack and the moto server; the SDK picks up `AWS_ENDPOINT_URL` by itself.
 */
import {
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { DatasetStore } from '../../core/ports.ts';

let sharedClient: S3Client | undefined;

/** One client per container: SDK clients are expensive to build and safe to reuse. */
export function s3Client(): S3Client {
  sharedClient ??= new S3Client({ forcePathStyle: true });
  return sharedClient;
}

export interface S3StoreOptions {
  readonly bucket: string;
  /** @default the module-level client from `s3Client()` */
  readonly client?: S3Client;
}

export function createS3Store(options: S3StoreOptions): DatasetStore {
  const { bucket } = options;
  const client = options.client ?? s3Client();
  return {
    async get(key) {
      try {
        const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        if (object.Body === undefined) return new Uint8Array();
        return await object.Body.transformToByteArray();
      } catch (error) {
        if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') {
          return undefined;
        }
        throw error;
      }
    },
    async put(key, body, contentType) {
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentType:
            contentType ?? (typeof body === 'string' ? 'text/plain; charset=utf-8' : undefined),
        }),
      );
    },
    async list(prefix) {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const object of page.Contents ?? []) {
          if (object.Key !== undefined) keys.push(object.Key);
        }
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
      return keys;
    },
  };
}

/** Reads a JSON object from the store, or `undefined` when the key does not exist. */
export async function getJson(store: DatasetStore, key: string): Promise<unknown> {
  const bytes = await store.get(key);
  return bytes === undefined ? undefined : JSON.parse(new TextDecoder().decode(bytes));
}

export async function putJson(store: DatasetStore, key: string, value: unknown): Promise<void> {
  await store.put(key, JSON.stringify(value), 'application/json');
}
