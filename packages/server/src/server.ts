/**
 * Builds and runs a Parley server: Fastify for the HTTP API, `ws` for device
 * connections on `/v1/websocket` and the provisioning relay on
 * `/v1/provisioning`, one database, and the post office between them.
 * `startServer` resolves once it listens; `close` drains it.
 *
 * With `redis`, the server is one node of several on one PostgreSQL
 * (cluster/redisCluster.ts); without it, no Redis code is even loaded.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

import { fastify, LogController, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { sql } from 'kysely';
import { WebSocketServer } from 'ws';

import { SecretBytes, type CryptoProvider } from '@parley/crypto';
import { createNodeProvider } from '@parley/crypto/node';

import { TokenIssuer } from './auth/tokens.js';
import { clientAddressOf } from './clientAddress.js';
import type { Cluster } from './cluster/cluster.js';
import type { RedisCluster } from './cluster/redisCluster.js';
import type { ServerContext } from './context.js';
import { DeviceConnection } from './delivery/connection.js';
import { PostOffice } from './delivery/postOffice.js';
import { Directory } from './directory.js';
import { CloseCode, isServerError, ServerError } from './errors.js';
import { armCrash, type CrashPlan } from './faultPoints.js';
import { accountRoutes } from './http/accounts.js';
import { authRoutes } from './http/auth.js';
import { deviceRoutes } from './http/devices.js';
import { keyRoutes } from './http/keys.js';
import { loadWebApp, webAppRoutes } from './http/webApp.js';
import {
  BUNDLE_FETCH_LIMITS,
  CHALLENGE_LIMITS,
  MAX_FRAME_BYTES,
  MAX_HTTP_BODY_BYTES,
  PROVISIONING_LIMITS,
  REGISTRATION_LIMITS,
} from './limits.js';
import { createLogger, type LogLevel } from './log.js';
import { createMetrics } from './metrics.js';
import { PROVISIONING_PATH, ProvisioningRelay } from './provisioning/relay.js';
import { RateLimiter, type BucketLimits, type Limiter } from './rateLimit.js';
import { openDatabase, type Database, type DatabaseConfig } from './storage/database.js';
import { kyselyMailboxWriter, totalEnvelopes, type MailboxWriter } from './storage/mailbox.js';
import { startSqliteWriter } from './storage/sqliteWriter.js';
import { loadSecret } from './storage/secrets.js';

export interface ServerConfig {
  readonly host: string;
  /** 0 picks a free port; `RunningServer.url` tells which. */
  readonly port: number;
  readonly database: DatabaseConfig;
  /**
   * redis://… : run as one node of several sharing `database` (PostgreSQL
   * only), told of each other's commits through this Redis.
   */
  readonly redis?: string;
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /** Serve plain HTTP on a non-loopback address (for a TLS-terminating proxy in front). */
  readonly allowInsecureHttp: boolean;
  /**
   * Take client addresses (used only for rate limits) from X-Forwarded-For,
   * believing only entries added by these proxies (comma-separated addresses
   * or CIDRs). Absent: the socket's peer address.
   */
  readonly trustProxy?: string;
  /** How often each WebSocket is pinged (HEARTBEAT_INTERVAL_MS by default); one silent for a whole interval is dropped. */
  readonly heartbeatMs: number;
  /** Registrations per client address in a burst (REGISTRATION_LIMITS.burst by default). */
  readonly registrationBurst: number;
  /** Provisioning-relay channels (device links) per client address in a burst (PROVISIONING_LIMITS.burst by default). */
  readonly provisioningBurst: number;
  readonly logLevel: LogLevel;
  /** Include client addresses in request logs. */
  readonly logIps: boolean;
  /** Serve /metrics to every address, not only loopback. */
  readonly publicMetrics: boolean;
  /** A built web client (apps/web's dist folder) to serve at `/`, under a strict Content-Security-Policy. */
  readonly webRoot?: string;
  /** For fault-injection tests only: where the process kills itself (faultPoints.ts). Armed process-wide. */
  readonly crashAt?: CrashPlan;
}

export interface RunningServer {
  readonly url: string;
  readonly database: Database;
  /** Stops accepting, stores and answers what was received, closes every connection, then the database. */
  close(): Promise<void>;
}

/** How often expired challenges and link tokens are deleted, and idle rate-limit buckets dropped. */
const SWEEP_INTERVAL_MS = 60_000;
/** How long shutdown waits for clients to answer the close handshake. */
const CLOSE_GRACE_MS = 2_000;

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

const LOOPBACK_PEERS = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/**
 * Starts a server.
 * @throws if the configuration is unsafe (plain HTTP off loopback without
 *   `allowInsecureHttp`), the database cannot be opened, or the port is taken.
 */
export async function startServer(config: ServerConfig): Promise<RunningServer> {
  if (config.tls === undefined && !isLoopback(config.host) && !config.allowInsecureHttp) {
    throw new Error(
      `refusing plain HTTP on ${config.host}: give --tls-cert and --tls-key, or --allow-insecure-http behind a TLS-terminating proxy`,
    );
  }
  const webApp = config.webRoot === undefined ? undefined : loadWebApp(config.webRoot); // a wrong folder fails before anything opens
  if (config.redis !== undefined && config.database.engine !== 'postgres') {
    throw new Error('several nodes share one PostgreSQL: --redis needs --database postgres://…');
  }
  armCrash(config.crashAt);
  const log = createLogger(config.logLevel);
  const now = () => Date.now();
  const provider = createNodeProvider();
  const database = await openDatabase(config.database);
  const { db } = database;
  let writer: MailboxWriter;
  try {
    writer =
      config.database.engine === 'sqlite'
        ? await startSqliteWriter({ path: database.location, synchronous: config.database.synchronous, crashAt: config.crashAt })
        : kyselyMailboxWriter(db);
  } catch (error) {
    await database.close();
    throw error;
  }

  const connections = new Set<DeviceConnection>();
  // The gauges read the post office, which needs the metrics: they are only read at scrape time, after both exist.
  const metrics = createMetrics({
    writeQueue: () => postOffice.queueDepth,
    inflight: () => [...connections].reduce((n, c) => n + c.inflight, 0),
    unsent: () => [...connections].reduce((n, c) => n + c.unsent, 0),
    stored: () => totalEnvelopes(db),
  });
  const redis =
    config.redis === undefined
      ? undefined
      : await openRedisCluster({ url: config.redis, namespace: await clusterNamespace(db, provider), now, log, metrics });
  const cluster: Cluster | undefined = redis;
  const directory = new Directory(db, cluster);
  const tokenKey = new SecretBytes(await loadSecret(db, 'token_hmac_key', () => provider.randomBytes(32)));
  const tokens = new TokenIssuer(provider, tokenKey, now);
  // In a cluster, limits a client could multiply by spreading its requests over the nodes live in Redis.
  const shared = (name: string, bucket: BucketLimits): Limiter => redis?.limiter(name, bucket) ?? new RateLimiter(bucket, now);
  const limits = {
    lookups: shared('lookups', BUNDLE_FETCH_LIMITS.perRequester),
    bundlesPerTarget: shared('bundles', BUNDLE_FETCH_LIMITS.perTarget),
    challenges: shared('challenges', CHALLENGE_LIMITS),
    registrations: shared('registrations', { ...REGISTRATION_LIMITS, burst: config.registrationBurst }),
    provisioning: new RateLimiter({ ...PROVISIONING_LIMITS, burst: config.provisioningBurst }, now),
  };
  const postOffice = new PostOffice({ db, writer, directory, metrics, log, now, lookups: limits.lookups, ...(cluster === undefined ? {} : { cluster }) });
  await redis?.start({
    listener: (mailbox) => postOffice.listener(mailbox),
    listeners: () => postOffice.listeners(),
    forgetAccount: (id) => {
      directory.forgetChanged(id);
    },
    forgetAccounts: () => {
      directory.forgetAll();
    },
  });
  const ctx: ServerContext = { database, provider, directory, tokens, postOffice, metrics, log, now, limits, ...(redis === undefined ? {} : { cluster: redis }) };

  const app = buildHttp(ctx, config);
  if (webApp !== undefined) webAppRoutes(app, webApp);
  let shuttingDown = false;

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
  const relay = new ProvisioningRelay({
    randomBytes: (length) => provider.randomBytes(length),
    limiter: limits.provisioning,
    clientAddress: clientAddressOf(config.trustProxy),
    metrics,
    log,
    ...(redis === undefined ? {} : { tunnels: redis.tunnels((length) => provider.randomBytes(length)) }),
  });
  app.server.on('upgrade', (request, socket, head) => {
    const path = (request.url ?? '').split('?')[0];
    if (path === PROVISIONING_PATH && !shuttingDown) {
      relay.upgrade(request, socket, head);
      return;
    }
    if (path !== '/v1/websocket' || shuttingDown) {
      socket.end(`HTTP/1.1 ${shuttingDown ? '503 Service Unavailable' : '404 Not Found'}\r\nConnection: close\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      try {
        const connection = new DeviceConnection(ws, { postOffice: ctx.postOffice, tokens, directory, metrics, log });
        connections.add(connection);
        void connection.closed.then(() => connections.delete(connection));
      } catch (error) {
        log.error({ err: error }, 'opening a connection failed');
        ws.terminate();
      }
    });
  });

  const heartbeat = setInterval(() => {
    relay.heartbeat();
    for (const connection of connections) {
      if (!connection.alive) {
        metrics.errors.inc({ code: 'HEARTBEAT_TIMEOUT' });
        connection.terminate();
      } else {
        connection.ping();
      }
    }
  }, config.heartbeatMs);
  const sweep = setInterval(() => {
    const t = now();
    void Promise.all([
      db.deleteFrom('auth_challenges').where('expires_at', '<=', t).execute(),
      db.deleteFrom('link_tokens').where('expires_at', '<=', t).execute(),
    ]).catch((error: unknown) => {
      log.error({ err: error }, 'sweeping expired tokens failed');
    });
    for (const limiter of Object.values(ctx.limits)) limiter.sweep();
  }, SWEEP_INTERVAL_MS);
  heartbeat.unref();
  sweep.unref();

  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    clearInterval(heartbeat);
    clearInterval(sweep);
    await redis?.close();
    await writer.close();
    await database.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `${config.tls === undefined ? 'http' : 'https'}://${host}:${port}`;
  log.info({ url, storage: database.engine, cluster: redis !== undefined }, 'listening');

  let closing: Promise<void> | undefined;
  const close = async () => {
    shuttingDown = true;
    log.info({ connections: connections.size }, 'shutting down');
    const relayClosed = relay.close(CLOSE_GRACE_MS); // it holds nothing to store: its sockets close at once
    await Promise.all([...connections].map((c) => c.quiesce()));
    await ctx.postOffice.flush();
    for (const connection of connections) connection.end(CloseCode.GOING_AWAY, 'server shutting down');
    const grace = setTimeout(() => {
      for (const connection of connections) connection.terminate();
    }, CLOSE_GRACE_MS);
    await Promise.all([...connections].map((c) => c.closed));
    clearTimeout(grace);
    await relayClosed;
    clearInterval(heartbeat);
    clearInterval(sweep);
    wss.close();
    await app.close();
    await ctx.postOffice.flush();
    await redis?.close();
    await writer.close();
    await database.close();
    tokenKey.wipe();
    log.info('stopped');
  };
  return { url, database, close: () => (closing ??= close()) };
}

/** Names a deployment's Redis channels and keys: made by its first node, read from the shared database by the others. */
async function clusterNamespace(db: Database['db'], provider: CryptoProvider): Promise<string> {
  return Buffer.from(await loadSecret(db, 'cluster_namespace', () => provider.randomBytes(8))).toString('hex');
}

/** Loads the cluster's code (and ioredis) only for a node that is one of several. */
async function openRedisCluster(deps: ConstructorParameters<typeof RedisCluster>[0]): Promise<RedisCluster> {
  const { RedisCluster: Implementation } = await import('./cluster/redisCluster.js');
  return new Implementation(deps);
}

function buildHttp(ctx: ServerContext, config: ServerConfig): FastifyInstance {
  const app = fastify({
    loggerInstance: ctx.log,
    logController: new LogController({ disableRequestLogging: true }), // one line per request, from onResponse below
    bodyLimit: MAX_HTTP_BODY_BYTES,
    // Fastify's Ajv strips properties a schema does not allow; refuse them instead (additionalProperties: false means no).
    // and never coerces a string into a number or the like.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    // The router refuses some requests before any route or error handler runs (a path that is not
    // percent-encoded UTF-8, an over-long parameter): they get the body every other refusal has.
    frameworkErrors: (error, _request, reply: FastifyReply) => {
      void reply.code(400).send({ error: { code: 'BAD_REQUEST', message: error.message } });
    },
    ...(config.trustProxy === undefined ? {} : { trustProxy: config.trustProxy }),
    ...(config.tls === undefined
      ? {}
      : { https: { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } }),
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unknown';
    ctx.metrics.httpRequests.inc({ route, status: reply.statusCode });
    request.log.info(
      { method: request.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime), ...(config.logIps ? { ip: request.ip } : {}) },
      'request',
    );
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    let failure: ServerError;
    if (isServerError(error)) failure = error;
    else if (error.validation !== undefined) failure = new ServerError('BAD_REQUEST', error.message);
    else if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') failure = new ServerError('TOO_LARGE', `a request body is at most ${MAX_HTTP_BODY_BYTES} bytes`);
    else if (error.statusCode !== undefined && error.statusCode < 500) failure = new ServerError('BAD_REQUEST', error.message);
    else {
      request.log.error({ err: error }, 'request failed');
      failure = new ServerError('INTERNAL', 'internal error');
    }
    if (failure.code !== 'BAD_REQUEST') ctx.metrics.errors.inc({ code: failure.code });
    if (failure.retryAfterSeconds !== undefined) void reply.header('retry-after', String(failure.retryAfterSeconds));
    return reply.code(failure.status).send({ error: { code: failure.code, message: failure.message } });
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'no such route' } }));

  app.get('/healthz', async (_request, reply) => {
    try {
      await sql`select 1`.execute(ctx.database.db);
      // A node without Redis still serves (it reads mailboxes on a timer): degraded, not down.
      return ctx.cluster === undefined ? { status: 'ok' } : { status: 'ok', cluster: ctx.cluster.healthy ? 'connected' : 'degraded' };
    } catch {
      return reply.code(503).send({ status: 'unavailable' });
    }
  });
  app.get('/metrics', async (request, reply) => {
    if (!config.publicMetrics && !LOOPBACK_PEERS.has(request.socket.remoteAddress ?? '')) {
      throw new ServerError('FORBIDDEN', 'metrics are served to loopback only (see --public-metrics)');
    }
    return reply.header('content-type', ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });

  accountRoutes(app, ctx);
  authRoutes(app, ctx);
  deviceRoutes(app, ctx);
  keyRoutes(app, ctx);
  return app;
}
