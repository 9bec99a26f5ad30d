/**
 * `esm-device`: the measurement daemon's command line. Settings come from flags, `ESM_*`
 * environment variables and a JSON config file (device-client/config.ts); logs are JSON lines
 * on stdout (journald keeps them under systemd). SIGTERM and SIGINT stop after the current
 * sample; a second signal exits at once.
 */
import { Command, Option } from 'commander';
import { EsmError } from '../core/errors.ts';
import type { Logger } from '../core/ports.ts';
import { configSources, type DeviceConfig, loadConfig } from './config.ts';
import { createDaemon } from './daemon.ts';

const levels = ['debug', 'info', 'warn', 'error'] as const;

/** JSON-lines logger: one object per line with time, level, message and fields. */
export function jsonLogger(level: DeviceConfig['logLevel'], thing: string): Logger {
  const min = levels.indexOf(level);
  const write =
    (at: (typeof levels)[number]) => (message: string, fields?: Record<string, unknown>) => {
      if (levels.indexOf(at) < min) return;
      const line = { time: new Date().toISOString(), level: at, thing, message, ...fields };
      process.stdout.write(`${JSON.stringify(line)}\n`);
    };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

const describe: Record<keyof typeof configSources, string> = {
  broker: 'broker URL, mqtt://host:port or mqtts://host:port',
  thing: 'thing name: MQTT client id and topic prefix esm/devices/{thing}/',
  cert: 'client certificate (PEM) for mutual TLS',
  key: 'private key of the client certificate (PEM)',
  ca: 'CA certificate(s) of the broker (PEM); AWS IoT: AmazonRootCA1.pem',
  queueLimit: 'jobs that may wait behind the running one (default 8)',
  heartbeatSeconds: 'seconds between heartbeats on the status topic (default 60)',
  keepaliveSeconds: 'MQTT keepalive in seconds (default 30)',
  reconnectMinMs: 'first reconnect delay in ms, doubled per failure (default 1000)',
  reconnectMaxMs: 'longest reconnect delay in ms (default 60000)',
  progressIntervalSeconds:
    'fewest seconds between two progress messages of a job; 0 = every sample (default 5)',
  progressIntervalMs: 'deprecated: the same in milliseconds (overrides --progress-interval)',
  jobMaxAgeHours:
    'jobs found on disk at start that were accepted longer ago are answered STOPPED, not run (default 24)',
  executionProvider: 'onnxruntime execution provider: cpu or cuda (default cpu)',
  logLevel: 'debug, info, warn or error (default info)',
  stateDir:
    'directory for accepted jobs and unacknowledged results, or none for memory only (default $XDG_STATE_HOME/esm-device/THING, ~/.local/state when unset)',
};

async function main(argv: readonly string[]): Promise<void> {
  // `esm-device register ...`: the device's one-time AWS IoT registration (register.ts).
  if (argv[2] === 'register') return (await import('./register.ts')).registerMain(argv);
  const program = new Command('esm-device')
    .description(
      'Measure ONNX latencies for the ESM platform: receives jobs over MQTT and reports results.',
    )
    .option('--config <file>', 'JSON file with any of the settings below (env: ESM_CONFIG)')
    .showHelpAfterError()
    // A bad flag is a configuration error: exit 2, which the systemd unit does not restart
    // (commander's own exit is 1, restarted every 5 s). Help and --version exit 0.
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
  // Commander names an option after its flag (`--progress-interval` -> progressInterval),
  // which need not be the config key (progressIntervalSeconds): keep the pairs.
  const attributes: [key: string, attribute: string][] = [];
  for (const [key, { flag, env }] of Object.entries(configSources)) {
    const text = describe[key as keyof typeof configSources];
    const option = new Option(`${flag} <value>`, `${text} (env: ${env})`);
    program.addOption(option);
    attributes.push([key, option.attributeName()]);
  }
  program.parse(argv);
  const opts = program.opts<Record<string, string | undefined>>();
  const flags: Record<string, string | undefined> = {};
  for (const [key, attribute] of attributes) flags[key] = opts[attribute];

  const config = loadConfig({ flags, ...(opts.config ? { configFile: opts.config } : {}) });
  const logger = jsonLogger(config.logLevel, config.thing);
  const daemon = createDaemon(config, { logger });
  logger.info('starting', {
    broker: config.broker,
    executionProvider: config.executionProvider,
    stateDir: config.stateDir ?? 'memory only',
  });

  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      logger.warn('second signal: exiting without waiting', { signal });
      process.exit(1);
    }
    signalled = true;
    logger.info('stopping after the current sample', { signal });
    daemon.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error('stop failed', { error: (error as Error).message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await daemon.ready;
  logger.info('ready', { jobs: `esm/devices/${config.thing}/jobs` });
}

// Exit 2 marks a configuration error, which the systemd unit does not restart; other errors exit 1.
main(process.argv).catch((error: unknown) => {
  if (error instanceof EsmError) {
    process.stderr.write(`esm-device: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`esm-device: unexpected error: ${(error as Error).stack ?? error}\n`);
  process.exit(1);
});
