/** Everything a request handler or connection may use, built once per server. */
import type { CryptoProvider } from '@parley/crypto';

import type { TokenIssuer } from './auth/tokens.js';
import type { PostOffice } from './delivery/postOffice.js';
import type { Directory } from './directory.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { RateLimiter } from './rateLimit.js';
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
  readonly limits: {
    /** Each account's budget for looking up other accounts: bundle fetches, account lookups, sends to unknown names. */
    readonly lookups: RateLimiter;
    readonly bundlesPerTarget: RateLimiter;
    readonly challenges: RateLimiter;
    readonly registrations: RateLimiter;
    /** Provisioning-relay `create` and `join` frames, per client address. */
    readonly provisioning: RateLimiter;
  };
}
