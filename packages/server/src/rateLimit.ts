/**
 * Token buckets in memory, keyed by strings the caller chooses. A bucket that
 * has refilled completely is indistinguishable from a fresh one and is
 * dropped, so memory follows the number of recently active keys.
 */
export interface BucketLimits {
  readonly burst: number;
  readonly perSecond: number;
}

/**
 * A rate limit, wherever its buckets live: this class keeps them in memory
 * (one node), cluster/redisRateLimit.ts in Redis (shared by every node).
 */
export interface Limiter {
  /**
   * Takes one token from `key`'s bucket.
   * @returns 0 if taken, else the seconds until one will be available.
   */
  take(key: string): number | Promise<number>;
  /** Drops buckets that have refilled completely (where the limiter keeps them itself). */
  sweep(): void;
}

interface Bucket {
  tokens: number;
  updated: number;
}

export class RateLimiter implements Limiter {
  readonly #limits: BucketLimits;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(limits: BucketLimits, now: () => number) {
    this.#limits = limits;
    this.#now = now;
  }

  /**
   * Takes one token from `key`'s bucket.
   * @returns 0 if taken, else the seconds until one will be available.
   */
  take(key: string): number {
    const now = this.#now();
    const { burst, perSecond } = this.#limits;
    const bucket = this.#buckets.get(key) ?? { tokens: burst, updated: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updated) / 1000) * perSecond);
    bucket.updated = now;
    if (bucket.tokens < 1) {
      this.#buckets.set(key, bucket);
      return Math.ceil((1 - bucket.tokens) / perSecond);
    }
    bucket.tokens -= 1;
    this.#buckets.set(key, bucket);
    return 0;
  }

  /** Drops buckets that have refilled completely. */
  sweep(): void {
    const now = this.#now();
    const { burst, perSecond } = this.#limits;
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + ((now - bucket.updated) / 1000) * perSecond >= burst) this.#buckets.delete(key);
    }
  }
}
