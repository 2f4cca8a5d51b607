/**
 * The registry of fuzz targets: every decoder that reads untrusted bytes —
 * protocol messages and records, WebSocket and provisioning frames, contents
 * and group changes, device linking, the server's answers as the client reads
 * them, REST bodies and paths, and frames sent to the server's WebSocket —
 * once, by name.
 * `fuzz.test.ts` runs each for a bounded count in `npm test`; `npm run fuzz`
 * runs them for as long as it is told.
 */
import type { FuzzTarget } from './engine.js';
import { clientTargets } from './targets/client.js';
import { clientApiTarget } from './targets/clientApi.js';
import { protocolTargets } from './targets/protocol.js';
import { serverTargets } from './targets/server.js';
import { websocketTarget } from './targets/websocket.js';

export const targets: readonly FuzzTarget[] = [...protocolTargets, ...clientTargets, clientApiTarget, ...serverTargets, websocketTarget];
