/**
 * The bench's own shortcuts over the wire frames (packages/protocol's
 * wire/frames.ts), so that the client process spends little of the machine's
 * two cores: a send frame is encoded once by the real encoder and then copied
 * with a new request id and body; an envelope frame is read for its id and the
 * body's timestamp only. `checkEnvelope` compares a shortcut with the real
 * decoder, and every recipient runs it on its first message of envelopes.
 */
import { decodeServerFrames, encodeClientFrame, type Envelope } from '@parley/protocol';

/** First byte of each server frame: (field number << 3) | 2. */
export const TAG = { ready: 0x0a, sent: 0x12, refused: 0x1a, envelope: 0x22, drained: 0x2a } as const;

/** Request ids cycle through the two-byte varints, so a template's layout never changes. */
const REQUEST_ID_MIN = 0x80;
const REQUEST_ID_MAX = 0x3fff;

/**
 * A message body: the time it was sent (float64) and its lane (uint32), then
 * filler. Every bench frame ends with one, at the same offset from the end.
 */
export const body = (bytes: number): Buffer => Buffer.alloc(bytes, 0x5a);
export const stampBody = (frame: Buffer, bodyBytes: number, sentAt: number, lane: number) => {
  frame.writeDoubleLE(sentAt, frame.length - bodyBytes);
  frame.writeUInt32LE(lane, frame.length - bodyBytes + 8);
};
export const readStamp = (frame: Buffer, bodyBytes: number) => ({
  sentAt: frame.readDoubleLE(frame.length - bodyBytes),
  lane: frame.readUInt32LE(frame.length - bodyBytes + 8),
});

function readVarint(bytes: Buffer, at: number): [value: number, next: number] {
  let value = 0;
  for (let scale = 1; ; scale *= 128) {
    const byte = bytes[at++];
    if (byte === undefined) throw new Error('truncated varint');
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, at];
  }
}

/**
 * The frames of a server message (one or more, concatenated), each as a view
 * from its tag to its end.
 */
export function splitFrames(message: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  for (let at = 0; at < message.length; ) {
    const [length, body] = readVarint(message, at + 1);
    const end = body + length;
    if (end > message.length) throw new Error('truncated frame');
    frames.push(message.subarray(at, end));
    at = end;
  }
  return frames;
}

/** The id of an envelope frame: its frame length, then field 1 (id) first. */
export function envelopeId(frame: Buffer): number {
  const [, at] = readVarint(frame, 1);
  if (frame[at] !== 0x08) throw new Error('an envelope frame does not start with its id');
  return readVarint(frame, at + 1)[0];
}

/** Checks the shortcuts against decodeServerFrames. @throws if they disagree. */
export function checkEnvelopes(message: Buffer, bodyBytes: number): void {
  const decoded = decodeServerFrames(new Uint8Array(message));
  const frames = splitFrames(message);
  const read = (frame: Buffer): Pick<Envelope, 'id' | 'body'> => ({ id: envelopeId(frame), body: frame.subarray(frame.length - bodyBytes) });
  if (
    decoded.length !== frames.length ||
    decoded.some((d, i) => {
      const shortcut = read(frames[i]!);
      return d.kind !== 'envelope' || d.envelope.id !== shortcut.id || !Buffer.from(d.envelope.body).equals(shortcut.body);
    })
  ) {
    throw new Error('the bench reads envelope messages differently from decodeServerFrames');
  }
}

/** Send frames to one recipient device, from one template. */
export class SendFrames {
  readonly #template: Buffer;
  readonly #requestIdAt: number;
  readonly #bodyBytes: number;
  #requestId = REQUEST_ID_MIN;

  constructor(recipient: { username: string; deviceId: number; registrationId: number }, bodyBytes: number) {
    const { username, deviceId, registrationId } = recipient;
    this.#bodyBytes = bodyBytes;
    this.#template = Buffer.from(
      encodeClientFrame({
        kind: 'send',
        requestId: REQUEST_ID_MIN,
        destinations: [{ username, messages: [{ deviceId, registrationId, type: 2, body: body(bodyBytes) }] }],
      }),
    );
    // frame tag, frame length, then the request id (field 1) leads the send.
    const [, at] = readVarint(this.#template, 1);
    if (this.#template[at] !== 0x08 || readVarint(this.#template, at + 1)[1] !== at + 3) throw new Error('unexpected send frame layout');
    this.#requestIdAt = at + 1;
  }

  get bytes(): number {
    return this.#template.length;
  }

  /** A new frame (ws may hold it until written) with the next request id and a stamped body. */
  next(sentAt: number, lane: number): Buffer {
    const frame = Buffer.from(this.#template);
    const id = this.#requestId;
    this.#requestId = id === REQUEST_ID_MAX ? REQUEST_ID_MIN : id + 1;
    frame[this.#requestIdAt] = 0x80 | (id & 0x7f);
    frame[this.#requestIdAt + 1] = id >>> 7;
    stampBody(frame, this.#bodyBytes, sentAt, lane);
    return frame;
  }
}
