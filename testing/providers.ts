/**
 * Every CryptoProvider configuration the shared suites run against: Node's
 * node:crypto, and the browser provider both on WebCrypto's curves and on
 * noble's (the path browsers without WebCrypto X25519/Ed25519 take).
 */
import type { CryptoProvider } from '@parley/crypto';
import { createNodeProvider, type NodeProviderOptions } from '@parley/crypto/node';
import { createWebProvider, type WebProviderOptions } from '@parley/crypto/web';

export interface ProviderCase {
  readonly label: string;
  readonly make: (options?: { randomBytes?: (length: number) => Uint8Array }) => CryptoProvider;
}

export const providerCases: readonly ProviderCase[] = [
  { label: 'node', make: (o: NodeProviderOptions = {}) => createNodeProvider(o) },
  { label: 'web (WebCrypto curves)', make: (o: WebProviderOptions = {}) => createWebProvider({ ...o, curves: 'webcrypto' }) },
  { label: 'web (noble curves)', make: (o: WebProviderOptions = {}) => createWebProvider({ ...o, curves: 'noble' }) },
];

/**
 * A random source that hands out `chunks` in turn (cycling), whatever length
 * was asked for, so that tests can also feed a primitive a wrong-sized seed.
 */
export function replaying(...chunks: Uint8Array[]): (length: number) => Uint8Array {
  let next = 0;
  return () => (chunks[next++ % chunks.length] as Uint8Array).slice();
}
