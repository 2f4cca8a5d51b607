/** Everything a request handler or connection may use, built once per server. */
import type { CryptoProvider } from '@parley/crypto';

import type { TokenIssuer } from './auth/tokens.js';
import type { PostOffice } from './delivery/postOffice.js';
import type { Directory } from './directory.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { Limiter, RateLimiter } from './rateLimit.js';
import type { Database } from './storage/database.js';

export interface ServerContext {
  readonly database: Database;
  readonly provider: CryptoProvider;
  readonly directory: Directory;
  readonly tokens: TokenIssuer;
  readonly postOffice: PostOffice;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly now: () => number;
  /** Set on a node of a cluster (`--redis`): whether it hears the other nodes now. */
  readonly cluster?: { readonly healthy: boolean };
  readonly limits: {
    /** Each account's budget for looking up other accounts: bundle fetches, account lookups, sends to unknown names. */
    readonly lookups: Limiter;
    readonly bundlesPerTarget: Limiter;
    readonly challenges: Limiter;
    readonly registrations: Limiter;
    /**
     * Provisioning-relay `create` and `join` frames, per client address. Kept
     * in each node's memory even in a cluster, since the relay admits a frame
     * synchronously: an address spreading its links over n nodes gets n bursts.
     */
    readonly provisioning: RateLimiter;
  };
}
