/**
 * `@parley/server`: a directory of public keys and a durable post office for
 * ciphertext. Run it with the `parley-server` command, or embed it with
 * `startServer`. Nothing but apps and tests imports this package.
 */
export { CloseCode, ERRORS, isServerError, ServerError, type ServerErrorCode } from './errors.js';
export * as limits from './limits.js';
export { startServer, type RunningServer, type ServerConfig } from './server.js';
