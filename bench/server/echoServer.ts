/**
 * The ceiling: a plain `ws` server that sends every binary message straight
 * back, with no parsing, storage or routing. Run as its own process by
 * echo.ts; prints `echo listening on <port>`.
 */
import { WebSocketServer, type AddressInfo } from 'ws';

const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
server.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => {
    socket.send(data, { binary: isBinary });
  });
});
server.on('listening', () => {
  console.log(`echo listening on ${(server.address() as AddressInfo).port}`);
});
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
