/**
 * Passes an HTTP upgrade (a WebSocket) on to the server at `target`, bytes
 * unchanged both ways: what test proxies do with the sockets they do not
 * inspect.
 */
import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';

export function tunnel(target: URL, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const upstreamSocket = connect(Number(target.port), target.hostname, () => {
    const headers = Object.entries(req.headers).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : (v ?? '')}`);
    upstreamSocket.write(`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`);
    upstreamSocket.write(head);
    upstreamSocket.pipe(socket);
    socket.pipe(upstreamSocket);
  });
  const end = () => {
    upstreamSocket.destroy();
    socket.destroy();
  };
  upstreamSocket.on('error', end);
  socket.on('error', end);
}
