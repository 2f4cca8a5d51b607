/**
 * Prometheus metrics, one registry per server: connections, queue depths,
 * deliveries and errors. Counts only: no label ever holds a username, a device
 * or an address.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  readonly connections: Gauge;
  readonly stored: Counter;
  readonly delivered: Counter;
  readonly acked: Counter;
  readonly refused: Counter<'code'>;
  readonly errors: Counter<'code'>;
  readonly httpRequests: Counter<'route' | 'status'>;
  readonly batchSeconds: Histogram;
}

/** Live values read at scrape time. */
export interface MetricSources {
  /** Sends waiting for the next commit. */
  writeQueue(): number;
  /** Envelopes pushed to connections and not yet acknowledged. */
  inflight(): number;
  /** Bytes written to device sockets and not yet taken by the network. */
  unsent(): number;
  /** Envelopes stored in all mailboxes. */
  stored(): Promise<number>;
}

export function createMetrics(sources: MetricSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'parley_' });
  const registers = [registry];
  new Gauge({
    name: 'parley_write_queue_depth',
    help: 'Sends waiting for the next commit',
    registers,
    collect() {
      this.set(sources.writeQueue());
    },
  });
  new Gauge({
    name: 'parley_inflight_envelopes',
    help: 'Envelopes pushed to connections and not yet acknowledged',
    registers,
    collect() {
      this.set(sources.inflight());
    },
  });
  new Gauge({
    name: 'parley_unsent_bytes',
    help: 'Bytes written to device connections and not yet taken by the network',
    registers,
    collect() {
      this.set(sources.unsent());
    },
  });
  new Gauge({
    name: 'parley_mailbox_envelopes',
    help: 'Envelopes stored in all mailboxes',
    registers,
    async collect() {
      this.set(await sources.stored());
    },
  });
  return {
    registry,
    connections: new Gauge({ name: 'parley_websocket_connections', help: 'Authenticated WebSocket connections', registers }),
    stored: new Counter({ name: 'parley_envelopes_stored_total', help: 'Envelopes stored durably', registers }),
    delivered: new Counter({ name: 'parley_envelopes_delivered_total', help: 'Envelopes pushed to a device', registers }),
    acked: new Counter({ name: 'parley_envelopes_acked_total', help: 'Envelopes acknowledged and deleted', registers }),
    refused: new Counter({ name: 'parley_sends_refused_total', help: 'Sends refused, by reason', labelNames: ['code'], registers }),
    errors: new Counter({ name: 'parley_errors_total', help: 'Errors, by code', labelNames: ['code'], registers }),
    httpRequests: new Counter({
      name: 'parley_http_requests_total',
      help: 'HTTP requests, by route pattern and status',
      labelNames: ['route', 'status'],
      registers,
    }),
    batchSeconds: new Histogram({
      name: 'parley_write_batch_seconds',
      help: 'Time to store one group-committed batch',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
  };
}
