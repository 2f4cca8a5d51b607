/**
 * Token buckets in Redis, shared by every node of a cluster, so a client
 * spreading its requests over the nodes gets the limit once, not once per
 * node. One Lua script refills and takes atomically, on Redis's clock (the
 * nodes' clocks need not agree); a bucket's key expires once it would have
 * refilled, so Redis holds only recently active keys, as the in-memory
 * limiter does.
 *
 * While Redis cannot be reached, each node falls back to its own in-memory
 * buckets: the limit still holds per node, and requests are not refused for
 * want of Redis.
 */
import type { Redis } from 'ioredis';

import { RateLimiter, type BucketLimits, type Limiter } from '../rateLimit.js';

/** KEYS[1]: the bucket. ARGV: burst, tokens per second. Returns 0 if taken, else seconds until one is. */
const TAKE_SCRIPT = `
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(bucket[1]) or burst
local updated = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + (now - updated) / 1000 * rate)
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) / rate) else tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return wait
`;

export class RedisRateLimiter implements Limiter {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #limits: BucketLimits;
  readonly #fallback: RateLimiter;

  /** A bucket's key is `prefix` and the caller's key: one prefix per limit keeps their buckets apart. */
  constructor(redis: Redis, prefix: string, limits: BucketLimits, now: () => number) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#limits = limits;
    this.#fallback = new RateLimiter(limits, now);
  }

  async take(key: string): Promise<number> {
    try {
      const wait = await this.#redis.eval(TAKE_SCRIPT, 1, this.#prefix + key, this.#limits.burst, this.#limits.perSecond);
      return Number(wait);
    } catch {
      return this.#fallback.take(key); // the cluster counts and logs the outage itself
    }
  }

  sweep(): void {
    this.#fallback.sweep(); // Redis expires its own buckets
  }
}
