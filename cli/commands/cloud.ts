/**
 * `esm cloud`: the deployed platform from a workstation, CI job or notebook. Every call is a
 * SigV4-signed request to the ESM API (cli/cloud-api.ts): credentials and region from the
 * usual AWS chain, the URL from `--api-url`, `ESM_API_URL` or the stack's `ApiUrl` output.
 *
 *   esm cloud devices register THING [--dir DIR | --csr FILE]   key stays on the device
 *   esm cloud devices list | delete THING | rotate THING
 *   esm cloud run start --space S --device thing:NAME [--params JSON|@FILE]
 *   esm cloud run status RUN_ID | wait RUN_ID
 *   esm cloud predict --predictor ID|SPACE/THING [--in FILE]
 *   esm cloud predictor pull RUN_ID|PREDICTOR_ID --out DIR    then: esm predict --predictor DIR
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Command, Option } from 'commander';
import { EsmError, ValidationError } from '../../core/errors.ts';
import type { PoolFloor } from '../../core/metric-rows.ts';
import { outsideDomainWarning } from '../../core/predictor/domain.ts';
import { type PoolTruth, type RunParams, runStatuses } from '../../core/schemas/run.ts';
import { deviceFiles, registerDevice } from '../../device-client/register.ts';
import { type CloudApi, CloudApiError, createCloudApi, resolveApiUrl } from '../cloud-api.ts';
import { jsonLines, parse, readInput } from '../common.ts';
import { describePoolExhausted, describePoolFloor, describePoolTruth } from '../pool-lines.ts';

interface ApiFlags {
  apiUrl?: string;
  stack?: string;
  region?: string;
}

async function api(flags: ApiFlags): Promise<CloudApi> {
  const apiUrl = await resolveApiUrl({ apiUrl: flags.apiUrl, stack: flags.stack });
  return createCloudApi({ apiUrl, region: flags.region });
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Adds the options every subcommand shares. */
function withApi(command: Command): Command {
  return command
    .option('--api-url <url>', 'API base URL (env ESM_API_URL; default: the stack output ApiUrl)')
    .option('--stack <name>', 'stateless stack to read ApiUrl from (default EsmStateless)')
    .option('--region <region>', 'AWS region to sign for (default: from the URL or AWS_REGION)');
}

interface Device {
  thing: string;
  status: string;
  state?: string;
  lastSeenAt?: string;
  certificateId?: string;
}

/** Every item of a paged listing route (`GET /devices`, `GET /runs`), following `next`. */
async function listAll<K extends 'devices' | 'runs', T>(client: CloudApi, route: K): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const query = cursor === undefined ? '' : `?cursor=${encodeURIComponent(cursor)}`;
    const page = await client.request<Record<K, T[]> & { next?: string }>(
      'GET',
      `${route}${query}`,
    );
    items.push(...page[route]);
    cursor = page.next;
  } while (cursor !== undefined);
  return items;
}

/** The run statuses `GET /runs/{id}` ends on (every one but running, core/schemas/run.ts). */
const terminal = new Set<string>(runStatuses.filter((s) => s !== 'running'));

interface RunAnswer {
  runId: string;
  status: string;
  iteration: number;
  measured: number;
  predictor: string | null;
  converged: boolean;
  bins: { lo: number; hi: number; accuracy: number | null }[];
  error: { name: string; message: string } | null;
  params: Pick<RunParams, 'accTh' | 'binAccuracy'>;
  history: { poolTruth?: PoolTruth }[];
}

/** A run as `GET /runs` lists it (lambdas/adapters/runs-table.ts `RunSummary`). */
interface RunSummary {
  runId: string;
  status: string;
  thing: string;
  space: string;
}

/** `POST /runs`'s answer (lambdas/handlers/api-start-run.ts), as far as the CLI reads it. */
interface StartAnswer {
  params: Pick<RunParams, 'pool' | 'metric' | 'dropBelow'>;
  poolFloor?: PoolFloor;
}

function progressLine(run: RunAnswer): string {
  const accuracies = run.bins.map((b) => b.accuracy).filter((a): a is number => a !== null);
  const lowest =
    accuracies.length === 0 ? '' : `, lowest bin accuracy ${Math.min(...accuracies).toFixed(3)}`;
  return `${run.runId}: ${run.status}, iteration ${run.iteration}, ${run.measured} measured${lowest}`;
}

/** `{"a":1}` or `@file.json`: the run parameters beyond the flags. */
async function paramsOf(text: string | undefined): Promise<Record<string, unknown>> {
  if (text === undefined) return {};
  const source = text.startsWith('@') ? await readFile(text.slice(1), 'utf8') : text;
  try {
    const value = JSON.parse(source) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error();
    return value as Record<string, unknown>;
  } catch {
    throw new ValidationError('--params', 'give a JSON object, or @FILE holding one');
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function register(program: Command): void {
  const cloud = program
    .command('cloud')
    .description('use the deployed ESM platform (SigV4-signed calls to its API)');

  const devices = cloud.command('devices').description('register, list and delete devices');
  withApi(
    devices
      .command('register <thing>')
      .description(
        'register a device: makes a key and CSR in --dir (the key never leaves it), or sends --csr',
      )
      .option('--dir <dir>', 'where the key, certificate and device.json go (default ./THING)')
      .option('--csr <file>', 'a CSR made on the device (esm-device register --csr-only)')
      .option('--description <text>', 'free text kept on the device record'),
  ).action(
    async (
      thing: string,
      flags: ApiFlags & { dir?: string; csr?: string; description?: string },
    ) => {
      const client = await api(flags);
      if (flags.csr !== undefined) {
        const csr = await readFile(flags.csr, 'utf8');
        const answer = await client.request<{ certificatePem: string; device: Device }>(
          'POST',
          'devices',
          { thing, csr, ...(flags.description ? { description: flags.description } : {}) },
        );
        const out = flags.dir ?? path.dirname(flags.csr);
        const cert = deviceFiles(out).cert;
        await writeFile(cert, answer.certificatePem);
        print({ thing, certificateId: answer.device.certificateId, certificate: cert });
        return;
      }
      const result = await registerDevice(
        { thing, dir: flags.dir ?? thing, description: flags.description },
        client,
      );
      print({ thing, ...result, start: `esm-device --config ${result.configFile}` });
    },
  );
  withApi(devices.command('list').description('the registered devices (all pages)')).action(
    async (flags: ApiFlags) =>
      print({ devices: await listAll<'devices', Device>(await api(flags), 'devices') }),
  );
  withApi(
    devices
      .command('delete <thing>')
      .description('retire its certificates, delete the thing and its record'),
  ).action(async (thing: string, flags: ApiFlags) => {
    print(await (await api(flags)).request('DELETE', `devices/${encodeURIComponent(thing)}`));
  });
  withApi(
    devices
      .command('rotate <thing>')
      .description('new key and certificate in --dir; the old certificate is retired')
      .option('--dir <dir>', 'the device directory of `devices register` (default ./THING)')
      .option('--keep-previous', 'keep the old certificate working until the next rotation'),
  ).action(async (thing: string, flags: ApiFlags & { dir?: string; keepPrevious?: boolean }) => {
    const client = await api(flags);
    const { newDeviceKey, certificateRequest } = await import('../../device-client/register.ts');
    const { createPrivateKey } = await import('node:crypto');
    const files = deviceFiles(flags.dir ?? thing);
    const key = newDeviceKey();
    const answer = await client.request<{ certificatePem: string; retired: string[] }>(
      'POST',
      `devices/${encodeURIComponent(thing)}/certificate`,
      { csr: certificateRequest(createPrivateKey(key), thing), keepPrevious: flags.keepPrevious },
    );
    await mkdir(path.dirname(files.key), { recursive: true });
    await writeFile(files.key, key, { mode: 0o600 });
    await writeFile(files.cert, answer.certificatePem);
    print({ thing, certificate: files.cert, key: files.key, retired: answer.retired });
  });

  const run = cloud.command('run').description('start and follow ESM runs in the cloud');
  withApi(
    run
      .command('start')
      .description('start an ESM run on a registered device (the parameters of `esm run`)')
      .requiredOption('--space <space>', 'search space, e.g. mobilenetv3')
      .requiredOption('--device <thing:NAME>', 'a registered device, thing:NAME')
      .option('--params <json>', 'more run parameters as JSON, or @FILE (e.g. {"maxIter":3})')
      .option('--seed <n>', 'random seed', parse.int(0, 0xffffffff))
      .option(
        '--prior <ref>',
        "transfer: correct another device's predictor (an id, SPACE/THING for its newest, or a predictor.json key); 20 archs first",
      ),
  ).action(
    async (
      flags: ApiFlags & {
        space: string;
        device: string;
        params?: string;
        seed?: number;
        prior?: string;
      },
    ) => {
      const body = {
        ...(await paramsOf(flags.params)),
        space: flags.space,
        device: flags.device,
        ...(flags.seed === undefined ? {} : { seed: flags.seed }),
        ...(flags.prior === undefined ? {} : { prior: flags.prior }),
      };
      const answer = await (await api(flags)).request<StartAnswer>('POST', 'runs', body);
      // A replay: what its pool's floor leaves out, or the rows far below the others.
      const { poolFloor, params } = answer;
      const line =
        poolFloor && params.pool !== undefined
          ? describePoolFloor(
              poolFloor,
              { file: params.pool, metric: params.metric, dropBelow: params.dropBelow },
              'params',
            )
          : undefined;
      if (line !== undefined) process.stderr.write(`${line}\n`);
      print(answer);
    },
  );
  withApi(
    run
      .command('list')
      .description('the runs, newest first (all pages), each where it stands')
      .option('--space <space>', 'only runs of this search space')
      .option('--thing <thing>', 'only runs on this device (the first of a fan-out)')
      .addOption(new Option('--status <status>', 'only runs in this status').choices(runStatuses)),
  ).action(async (flags: ApiFlags & { space?: string; thing?: string; status?: string }) => {
    const runs = await listAll<'runs', RunSummary>(await api(flags), 'runs');
    print({
      runs: runs
        .filter(
          (r) =>
            (flags.space === undefined || r.space === flags.space) &&
            (flags.thing === undefined || r.thing === flags.thing) &&
            (flags.status === undefined || r.status === flags.status),
        )
        // Pages are sorted each on their own; run ids start with their start time.
        .sort((a, b) => b.runId.localeCompare(a.runId)),
    });
  });
  withApi(run.command('status <runId>').description('status, iterations and bin accuracy')).action(
    async (runId: string, flags: ApiFlags) =>
      print(await (await api(flags)).request('GET', `runs/${encodeURIComponent(runId)}`)),
  );
  withApi(
    run
      .command('wait <runId>')
      .description(
        'wait for the run to finish, printing progress; exit 1 if the run failed, 2 at --timeout',
      )
      .addOption(
        new Option('--interval <seconds>', 'seconds between polls')
          .argParser(parse.int(1, 3600))
          .default(10),
      )
      .addOption(
        new Option('--timeout <seconds>', 'give up after this long (0: never)')
          .argParser(parse.int(0, 30 * 86_400))
          .default(0),
      ),
  ).action(async (runId: string, flags: ApiFlags & { interval: number; timeout: number }) => {
    const client = await api(flags);
    const deadline =
      flags.timeout === 0 ? Number.POSITIVE_INFINITY : Date.now() + flags.timeout * 1000;
    let last = '';
    for (;;) {
      const answer = await client.request<RunAnswer>('GET', `runs/${encodeURIComponent(runId)}`);
      const line = progressLine(answer);
      if (line !== last) process.stderr.write(`${line}\n`);
      last = line;
      if (terminal.has(answer.status)) {
        // A replay (params.pool) that stopped says how its predictor did on the undrawn rows.
        const truth = answer.history.at(-1)?.poolTruth;
        if (truth) {
          for (const text of describePoolTruth(truth, answer.params, 'params')) {
            process.stderr.write(`${text}\n`);
          }
        }
        if (answer.status === 'pool-exhausted') {
          process.stderr.write(`${describePoolExhausted(answer.history.length, 'params')}\n`);
        }
        print(answer);
        if (answer.status === 'failed') {
          // Exit 1: the run failed; 2 stays for what the user typed or set (reportError).
          const why = answer.error
            ? `${answer.error.name}: ${answer.error.message}`
            : 'no reason recorded';
          process.stderr.write(`error: run ${runId} failed: ${why}\n`);
          process.exitCode = 1;
        }
        return;
      }
      if (Date.now() > deadline) {
        throw new EsmError(`run ${runId} still ${answer.status} after ${flags.timeout} s`);
      }
      await sleep(flags.interval * 1000);
    }
  });

  withApi(
    cloud
      .command('predict')
      .description(
        'latencies (JSONL {"latency_ms", "std_ms"}) from a deployed predictor, like esm predict',
      )
      .requiredOption('--predictor <id>', 'a predictor id, or SPACE/THING for the newest')
      .option('--in <file>', 'JSONL of native archs or dataset lines (default: stdin)'),
  ).action(async (flags: ApiFlags & { predictor: string; in?: string }) => {
    const archs = jsonLines(await readInput(flags.in)).map(({ line, text }) => {
      try {
        const value = JSON.parse(text) as { arch?: unknown };
        return typeof value === 'object' && value !== null && 'arch' in value ? value.arch : value;
      } catch (cause) {
        throw new ValidationError(`${flags.in ?? '<stdin>'}:${line}`, 'not valid JSON', { cause });
      }
    });
    if (archs.length === 0) {
      throw new ValidationError('--in', 'has no architectures; give one JSON arch per line');
    }
    const answer = await (await api(flags)).request<{
      latency_ms: number[];
      std_ms?: (number | null)[];
      outside_domain?: { index: number; reason: string }[];
    }>('POST', 'predict', { predictor: flags.predictor, archs });
    const round = (v: number | null | undefined) => (v == null ? null : Number(v.toPrecision(7)));
    const out = answer.latency_ms.map(
      (v, i) => `${JSON.stringify({ latency_ms: round(v), std_ms: round(answer.std_ms?.[i]) })}\n`,
    );
    process.stdout.write(out.join(''));
    // The same warning as esm predict's, from the API's answer.
    const warning = outsideDomainWarning(answer.outside_domain ?? [], archs.length);
    if (warning) process.stderr.write(`${warning}\n`);
  });

  const predictor = cloud.command('predictor').description('trained predictors');
  withApi(
    predictor
      .command('list')
      .description('the stored predictors, newest first (ids for pull, predict and --prior)')
      .option('--space <space>', 'only those of this search space')
      .option('--thing <thing>', 'only those trained on this device'),
  ).action(async (flags: ApiFlags & { space?: string; thing?: string }) => {
    const answer = await (await api(flags)).request<{
      predictors: { space: string; thing: string | null }[];
    }>('GET', 'predictors');
    print({
      predictors: answer.predictors.filter(
        (p) =>
          (flags.space === undefined || p.space === flags.space) &&
          (flags.thing === undefined || p.thing === flags.thing),
      ),
    });
  });
  withApi(
    predictor
      .command('pull <id>')
      .description('download the predictor of a run (or a predictor id) for esm predict')
      .requiredOption('--out <dir>', 'directory to write predictor.json and predictor.onnx to'),
  ).action(async (id: string, flags: ApiFlags & { out: string }) => {
    const client = await api(flags);
    let predictorId = id;
    try {
      const answer = await client.request<RunAnswer>('GET', `runs/${encodeURIComponent(id)}`);
      if (answer.predictor === null) {
        throw new EsmError(`run ${id} has no predictor yet (${answer.status}); wait for it`);
      }
      predictorId = answer.predictor;
    } catch (error) {
      // Not a run id: take it as a predictor id.
      if (!(error instanceof CloudApiError) || error.status !== 404) throw error;
    }
    const answer = await client.request<{ files: Record<string, string> }>(
      'GET',
      `predictors/${encodeURIComponent(predictorId)}`,
    );
    await mkdir(flags.out, { recursive: true });
    for (const [name, base64] of Object.entries(answer.files)) {
      await writeFile(path.join(flags.out, path.basename(name)), Buffer.from(base64, 'base64'));
    }
    print({ predictor: predictorId, out: flags.out, files: Object.keys(answer.files) });
  });
}
