/**
 * `@parley/client`: the SDK every Parley app is built on. Platform-neutral;
 * `@parley/client/node` supplies Node's crypto, SQLite store and WebSocket.
 */
export { ParleyClient, type Platform, type SafetyNumber } from './client.js';
export { DEFAULT_HISTORY_WINDOW, type HistoryWindow, type LinkRequest, type PendingLink } from './devices.js';
export type { ClientEvents } from './context.js';
export { ClientError, isClientError, type ClientErrorCode } from './errors.js';
export type { LogEvents, LogLevel, LogSink, LogValue } from './log.js';
export { CONTENT_VERSION, decodeContent, encodeContent, type Content } from './content.js';
export type { GroupAlert, GroupAlertReason, GroupInfo, GroupMemberDetails } from './groups/groups.js';
export { groupConversation } from './groups/state.js';
export type { KeyValueStore, Write } from './store/kv.js';
export { MemoryStore } from './store/memory.js';
export type { MessageStatus, StoredMessage } from './store/records.js';
export { DEFAULT_BACKOFF, type BackoffOptions, type ConnectionState, type WebSocketFactory, type WebSocketLike } from './transport.js';
