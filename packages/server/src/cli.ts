/**
 * `parley-server`: runs a Parley server. With no options it serves plain HTTP
 * on 127.0.0.1:8787 and keeps its data in SQLite under ./parley-data.
 */
import { parseArgs } from 'node:util';

import { crashPlanFromEnv } from './faultPoints.js';
import { HEARTBEAT_INTERVAL_MS, PROVISIONING_LIMITS, REGISTRATION_LIMITS } from './limits.js';
import type { LogLevel } from './log.js';
import { startServer, type ServerConfig } from './server.js';

const USAGE = `Usage: parley-server [options]

  --host <address>        address to listen on (default 127.0.0.1; env PARLEY_HOST)
  --port <number>         port to listen on; 0 picks a free one (default 8787; env PARLEY_PORT)
  --data <dir>            SQLite data folder (default ./parley-data; env PARLEY_DATA)
  --database <url>        postgres://… to store in PostgreSQL instead (env PARLEY_DATABASE_URL)
  --pool-size <number>    PostgreSQL connections (default 10)
  --redis <url>           redis://… : run as one node of several on one PostgreSQL; nodes wake each
                          other through this Redis (needs --database; env PARLEY_REDIS_URL)
  --sqlite-sync <mode>    full (default): a commit survives power loss; normal: a process crash only
  --tls-cert <file>       PEM certificate; with --tls-key, serve HTTPS and WSS
  --tls-key <file>        PEM private key
  --allow-insecure-http   serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy)
  --trust-proxy <proxies> take client addresses from X-Forwarded-For, believing only the entries
                          these proxies added: comma-separated addresses or CIDRs (e.g. 127.0.0.1)
  --registrations <n>     registrations allowed per client address in a burst (default 10; refills one per 20 s)
  --links <n>             device-linking channels allowed per client address in a burst (default 20; refills one per 10 s)
  --heartbeat <seconds>   ping interval; a connection silent through a whole interval is dropped (default 30)
  --log-level <level>     fatal, error, warn, info (default), debug, trace or silent
  --log-ips               include client addresses in request logs (off by default)
  --public-metrics        serve /metrics to every address, not only loopback
  --web <dir>             serve the built web client in <dir> at / (npm start gives apps/web/dist; env PARLEY_WEB)
  -h, --help              show this help
`;

const LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

class UsageError extends Error {}

function parseConfig(argv: string[]): ServerConfig | undefined {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      data: { type: 'string' },
      database: { type: 'string' },
      'pool-size': { type: 'string' },
      redis: { type: 'string' },
      'sqlite-sync': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'allow-insecure-http': { type: 'boolean' },
      'trust-proxy': { type: 'string' },
      heartbeat: { type: 'string' },
      registrations: { type: 'string' },
      links: { type: 'string' },
      'log-level': { type: 'string' },
      'log-ips': { type: 'boolean' },
      'public-metrics': { type: 'boolean' },
      web: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return undefined;
  const env = process.env;
  const integer = (text: string, name: string, min: number, max: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
  const port = integer(values.port ?? env['PARLEY_PORT'] ?? '8787', '--port', 0, 65_535);
  const url = values.database ?? env['PARLEY_DATABASE_URL'];
  if (url !== undefined && !/^postgres(ql)?:\/\//.test(url)) throw new UsageError('--database takes a postgres:// URL');
  const redis = values.redis ?? env['PARLEY_REDIS_URL'];
  if (redis !== undefined && !/^rediss?:\/\//.test(redis)) throw new UsageError('--redis takes a redis:// or rediss:// URL');
  if (redis !== undefined && url === undefined) throw new UsageError('--redis needs --database: the nodes share one PostgreSQL');
  const sync = values['sqlite-sync'] ?? 'full';
  if (sync !== 'full' && sync !== 'normal') throw new UsageError('--sqlite-sync is full or normal');
  const level = values['log-level'] ?? 'info';
  if (!LEVELS.includes(level as LogLevel)) throw new UsageError(`--log-level is one of ${LEVELS.join(', ')}`);
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  const web = values.web ?? env['PARLEY_WEB'];
  const faults = crashPlanFromEnv(env);
  if (faults.warning !== undefined) process.stderr.write(`parley-server: ${faults.warning}\n`);
  return {
    host: values.host ?? env['PARLEY_HOST'] ?? '127.0.0.1',
    port,
    database:
      url === undefined
        ? { engine: 'sqlite', dataDir: values.data ?? env['PARLEY_DATA'] ?? 'parley-data', synchronous: sync }
        : { engine: 'postgres', url, poolSize: integer(values['pool-size'] ?? '10', '--pool-size', 1, 1_000) },
    ...(redis === undefined ? {} : { redis }),
    ...(cert !== undefined && key !== undefined ? { tls: { certFile: cert, keyFile: key } } : {}),
    allowInsecureHttp: values['allow-insecure-http'] === true,
    heartbeatMs: integer(values.heartbeat ?? String(HEARTBEAT_INTERVAL_MS / 1000), '--heartbeat', 1, 3_600) * 1000,
    ...(values['trust-proxy'] === undefined ? {} : { trustProxy: trustedProxies(values['trust-proxy']) }),
    registrationBurst: integer(values.registrations ?? String(REGISTRATION_LIMITS.burst), '--registrations', 1, 1_000_000_000),
    provisioningBurst: integer(values.links ?? String(PROVISIONING_LIMITS.burst), '--links', 1, 1_000_000_000),
    logLevel: level as LogLevel,
    logIps: values['log-ips'] === true,
    publicMetrics: values['public-metrics'] === true,
    ...(web === undefined ? {} : { webRoot: web }),
    ...(faults.plan === undefined ? {} : { crashAt: faults.plan }),
  };
}

/** `--trust-proxy`: the addresses of the proxies whose X-Forwarded-For entries are believed. */
function trustedProxies(value: string): string {
  if (!/^[0-9a-fA-F.:/]+(,[0-9a-fA-F.:/]+)*$/.test(value)) throw new UsageError('--trust-proxy takes proxy addresses or CIDRs, comma-separated');
  return value;
}

async function main(): Promise<void> {
  let config: ServerConfig | undefined;
  try {
    config = parseConfig(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof TypeError) && !(error instanceof RangeError)) throw error;
    process.stderr.write(`parley-server: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (config === undefined) {
    process.stdout.write(USAGE);
    return;
  }

  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(config);
  } catch (error) {
    process.stderr.write(`parley-server: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  process.stdout.write(`Parley server listening on ${server.url} (storage: ${server.database.location})\n`);
  if (config.webRoot !== undefined) process.stdout.write(`Parley on the web: open ${server.url}/ in a browser\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      process.stderr.write(`parley-server: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`parley-server: shutdown failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => {
    stop('SIGINT');
  });
  process.on('SIGTERM', () => {
    stop('SIGTERM');
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`parley-server: ${error instanceof Error ? error.message : String(error)}\n`);
  if (error instanceof Error && error.cause !== undefined) process.stderr.write(`  cause: ${error.cause instanceof Error ? error.cause.message : JSON.stringify(error.cause)}\n`);
  process.exit(1);
});
