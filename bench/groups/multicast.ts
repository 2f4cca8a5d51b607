/**
 * The two ways a sender hands one group message to the server: a `multicast`
 * (one body, stored in every listed device's mailbox) and, as its peer, what a
 * client without multicast does: one `send` per member account, each naming
 * every device of the account with a copy of the same body.
 */
import { encodeClientFrame, SENDER_KEY_MESSAGE_TYPE, type Destination, type MulticastRecipient } from '@parley/protocol';

export type { MulticastRecipient };

/** The multicast frame of one sender-key message (envelope type 7) to `recipients`. */
export function encodeMulticast(requestId: number, body: Uint8Array, recipients: readonly MulticastRecipient[]): Uint8Array {
  return encodeClientFrame({ kind: 'multicast', requestId, type: SENDER_KEY_MESSAGE_TYPE, body, recipients });
}

/** The per-account `send` frames that carry the same body to the same devices (one destination each). */
export function encodeSends(firstRequestId: number, body: Uint8Array, recipients: readonly MulticastRecipient[]): Uint8Array[] {
  return recipients.map((recipient, i) => {
    const destination: Destination = {
      username: recipient.username,
      messages: recipient.devices.map((d) => ({ deviceId: d.deviceId, registrationId: d.registrationId, type: SENDER_KEY_MESSAGE_TYPE, body })),
    };
    return encodeClientFrame({ kind: 'send', requestId: firstRequestId + i, destinations: [destination] });
  });
}
