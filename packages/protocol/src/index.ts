/**
 * `@parley/protocol`: the Signal protocol for one-to-one sessions — PQXDH and
 * the Double Ratchet — and sender keys for groups, byte-compatible with libsignal. Pure: it does no I/O,
 * reads no clock and draws randomness only from the CryptoProvider it is given.
 */
export { addressKey, type ProtocolAddress } from './address.js';
export {
  CURRENT_VERSION,
  decodePreKeySignalMessage,
  decodeSignalMessage,
  MessageType,
  type PreKeySignalMessage,
  type SignalMessage,
} from './codec/messages.js';
export { isProtocolError, ProtocolError, type ProtocolErrorCode, type ProtocolErrorDetails } from './errors.js';
export {
  generateIdentityKeyPair,
  generateKyberPreKey,
  generatePreKeys,
  generateRegistrationId,
  generateSignedPreKey,
  type IdentityKeyPair,
  type KyberPreKeyRecord,
  type PreKeyBundle,
  type PreKeyRecord,
  type SignedPreKeyRecord,
  verifyPreKeySignature,
} from './keys.js';
export * as limits from './limits.js';
export { processPreKeyBundle } from './sessionBuilder.js';
export {
  createSenderKeyDistributionMessage,
  groupDecrypt,
  groupEncrypt,
  processSenderKeyDistributionMessage,
} from './groupCipher.js';
export {
  bytesToUuid,
  decodeSenderKeyDistributionMessage,
  decodeSenderKeyMessage,
  SENDER_KEY_MESSAGE_TYPE,
  type SenderKeyDistributionMessage,
  type SenderKeyMessage,
} from './codec/senderKeyMessages.js';
export { deserializeSenderKeyRecord, serializeSenderKeyRecord } from './codec/senderKeyRecord.js';
export { EMPTY_SENDER_KEY_RECORD, type SenderKeyRecord } from './senderKeys/senderKeyRecord.js';
export { SENDER_KEY_MESSAGE_VERSION, type SenderKeyState, type SenderSigningKey } from './senderKeys/senderKeyState.js';
export {
  decryptMessage,
  decryptPreKeySignalMessage,
  decryptSignalMessage,
  encryptMessage,
  type CiphertextMessage,
} from './sessionCipher.js';
export { EMPTY_RECORD, type SessionRecord } from './sessionRecord.js';
export { skippedKeyCount, type SessionState } from './sessionState.js';
export {
  InMemoryIdentityKeyStore,
  InMemoryPreKeyStore,
  InMemorySenderKeyStore,
  InMemorySessionStore,
  inMemoryStores,
  type Direction,
  type IdentityKeyStore,
  type KyberPreKeyStore,
  type PreKeyStore,
  type ProtocolStores,
  type SenderKeyStore,
  type SessionStore,
  type SignedPreKeyStore,
} from './stores.js';
export {
  compareScannable,
  createFingerprint,
  SCANNABLE_FINGERPRINT_VERSION,
  type Fingerprint,
  type FingerprintParty,
} from './fingerprint.js';
export { deserializeSessionRecord, serializeSessionRecord, SESSION_RECORD_FORMAT } from './codec/sessionRecord.js';
export {
  deserializeIdentityKeyPair,
  deserializeKyberPreKeyRecord,
  deserializePreKeyRecord,
  deserializeSignedPreKeyRecord,
  serializeIdentityKeyPair,
  serializeKyberPreKeyRecord,
  serializePreKeyRecord,
  serializeSignedPreKeyRecord,
} from './codec/keyRecords.js';
export * from './wire/index.js';
/** The protobuf subset and UTF-8 helpers, for the client's own formats (content, local records). */
export {
  optionalBytes,
  optionalUint32,
  ProtoWriter,
  readProto,
  readProtoFields,
  requiredBytes,
  requiredUint32,
  requiredUint64,
  type ProtoValue,
} from './codec/protobuf.js';
export { fromUtf8, utf8 } from './wire/text.js';
