/**
 * What a Parley client and server say to each other, as codecs both sides
 * share: usernames, signed device lists, login challenges, WebSocket frames and
 * the provisioning relay's frames.
 * Only encoding and verification live here; neither side's logic does.
 */
export { AUTH_CHALLENGE_LENGTH, signAuthChallenge, verifyAuthChallenge } from './auth.js';
export {
  decodeDeviceList,
  encodeDeviceList,
  signDeviceList,
  verifyDeviceList,
  type DeviceEntry,
  type DeviceList,
  type SignedDeviceList,
} from './deviceList.js';
export {
  decodeClientFrame,
  decodeServerFrame,
  decodeServerFrames,
  encodeClientFrame,
  encodeServerFrame,
  type ClientFrame,
  type DeviceMismatch,
  type Destination,
  type Envelope,
  type MulticastRecipient,
  type OutgoingMessage,
  type SendRefusalCode,
  type ServerFrame,
} from './frames.js';
export {
  decodeProvisioningClientFrame,
  decodeProvisioningServerFrame,
  encodeProvisioningClientFrame,
  encodeProvisioningServerFrame,
  PROVISIONING_ADDRESS_LENGTH,
  type ProvisioningClientFrame,
  type ProvisioningServerFrame,
} from './provisioning.js';
export { foldUsername, isCanonicalUsername, USERNAME_MAX_LENGTH, USERNAME_MIN_LENGTH } from './username.js';
