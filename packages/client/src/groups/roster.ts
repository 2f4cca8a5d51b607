/**
 * The member-signed group roster: who is in a group and with which role, as
 * a hash chain of changes each signed by a member's identity key. The server
 * relays changes but cannot forge one, reorder them, replay an old one or fork
 * the chain; swapping a member's identity key in what it serves does not help
 * it either, because a change must verify under the key the roster already
 * lists for its author. Pure: no I/O, no storage, no clock; randomness only
 * from the provider.
 *
 *   change    = proto{group_id=1, version=2, previous_hash=3, author=4,
 *                     create=5 | add=6 | remove=7 | promote=8 | demote=9 | title=10 | leave=11}
 *   create    = proto{title=1, member=2*}        add     = proto{member=1}
 *   remove    = promote = demote = proto{username=1}
 *   title     = proto{title=1}                   leave   = proto{}
 *   member    = proto{username=1, identity_key=2, role=3}   role: 1 admin, 2 member
 *   signature = XEdDSA(author's identity, "Parley group change v1" ‖ 0x00 ‖ change)
 *   signed    = proto{change=1, signature=2}
 *   roster'   = apply(roster, signed); roster'.hash = SHA-256(change)
 *
 * Rules of `apply(roster, signed)`, checked in this order, before anything new
 * is returned (the input roster is never modified):
 *   1. the change decodes, with exactly one action (INVALID_CHANGE);
 *   2. create: no current roster and version = 1, previous_hash = 0³² (WRONG_VERSION,
 *      BROKEN_CHAIN); otherwise group_id = roster.id (WRONG_GROUP), version =
 *      roster.version + 1 (WRONG_VERSION), previous_hash = roster.hash (BROKEN_CHAIN);
 *   3. the author is listed — in the create's own members for a create, in the
 *      current roster otherwise (NOT_ENTITLED) — and the signature verifies under
 *      that listed key (INVALID_SIGNATURE);
 *   4. create, add, remove, promote, demote and title need an admin author; leave
 *      needs a member (NOT_ENTITLED);
 *   5. the action must change something: add of a member, remove/promote/demote
 *      of a non-member or to the role already held, remove of oneself (that is
 *      `leave`) are INVALID_CHANGE;
 *   6. a group never loses its last admin while it has members: demoting oneself
 *      as the only admin, or leaving as the only admin while others remain, is
 *      LAST_ADMIN. The last member may always leave; the roster is then empty
 *      and no further change can apply (the group is over).
 */
import {
  concatBytes,
  constantTimeEqual,
  deserializePublicKey,
  xeddsaSign,
  xeddsaVerify,
  type CryptoProvider,
} from '@parley/crypto';
import {
  fromUtf8,
  isCanonicalUsername,
  limits,
  ProtoWriter,
  readProto,
  readProtoFields,
  requiredBytes,
  requiredUint32,
  requiredUint64,
  utf8,
  type IdentityKeyPair,
  type ProtoValue,
} from '@parley/protocol';

const CONTEXT = utf8('Parley group change v1\0');

/**
 * At most this many members: the accounts one multicast may name (the
 * server's limit, set for this). Every member encrypts to every other's
 * devices (sender-key distribution), so beyond a thousand the fan-out of one
 * change costs more than a messenger's group should; it also bounds a create.
 */
export const MAX_GROUP_MEMBERS = limits.MAX_MULTICAST_RECIPIENTS;
/** A title's longest UTF-8 encoding: a line of a list, not a document. */
export const MAX_TITLE_BYTES = 128;
/** A group id's length: 128 random bits, so ids never collide. */
export const GROUP_ID_LENGTH = 16;
/** The length of a roster hash (SHA-256). */
export const HASH_LENGTH = 32;

/** Every way a change can be refused. */
export type RosterErrorCode =
  /** Malformed bytes, or an action that changes nothing or breaks a limit. */
  | 'INVALID_CHANGE'
  /** The signature does not verify under the author's listed identity key. */
  | 'INVALID_SIGNATURE'
  /** The author is not listed, or lacks the role the action needs. */
  | 'NOT_ENTITLED'
  /** The version is not the next one: a replay, a gap, or a create on an existing group. */
  | 'WRONG_VERSION'
  /** The change belongs to another group. */
  | 'WRONG_GROUP'
  /** The previous hash is not the current roster's: a fork. */
  | 'BROKEN_CHAIN'
  /** The change would leave members without an admin. */
  | 'LAST_ADMIN';

/** The one error this module throws for refused or malformed changes. */
export class RosterError extends Error {
  override readonly name = 'RosterError';
  readonly code: RosterErrorCode;

  constructor(code: RosterErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Narrows `error` to a {@link RosterError}, optionally with the given `code`. */
export function isRosterError<C extends RosterErrorCode>(error: unknown, code?: C): error is RosterError & { code: C } {
  return error instanceof RosterError && (code === undefined || error.code === code);
}

export type GroupRole = 'admin' | 'member';

/** One member of a group. */
export interface GroupMember {
  /** Canonical username. */
  readonly username: string;
  /** Serialized (33-byte) identity public key. */
  readonly identityKey: Uint8Array;
  readonly role: GroupRole;
}

/** A group at one version. */
export interface Roster {
  readonly id: Uint8Array;
  readonly title: string;
  /** Starts at 1, one more with every change. */
  readonly version: number;
  readonly members: readonly GroupMember[];
  /** SHA-256 of the encoded change that produced this version. */
  readonly hash: Uint8Array;
}

export type GroupAction =
  | { readonly kind: 'create'; readonly title: string; readonly members: readonly GroupMember[] }
  | { readonly kind: 'add'; readonly member: GroupMember }
  | { readonly kind: 'remove'; readonly username: string }
  | { readonly kind: 'promote'; readonly username: string }
  | { readonly kind: 'demote'; readonly username: string }
  | { readonly kind: 'title'; readonly title: string }
  | { readonly kind: 'leave' };

/** One change to a roster, before signing. */
export interface GroupChange {
  readonly groupId: Uint8Array;
  /** The version this change produces. */
  readonly version: number;
  /** The hash of the roster it applies to; zeros for a create. */
  readonly previousHash: Uint8Array;
  readonly author: string;
  readonly action: GroupAction;
}

/** A change as it travels: the exact bytes signed, and the signature. */
export interface SignedGroupChange {
  readonly change: Uint8Array;
  readonly signature: Uint8Array;
}

const ACTION_FIELD = { create: 5, add: 6, remove: 7, promote: 8, demote: 9, title: 10, leave: 11 } as const;
const ROLE_CODE = { admin: 1, member: 2 } as const;

const invalid = (message: string, cause?: unknown) =>
  new RosterError('INVALID_CHANGE', `group change: ${message}`, cause === undefined ? undefined : { cause });

function encodeMember(member: GroupMember): Uint8Array {
  return new ProtoWriter()
    .bytes(1, utf8(member.username))
    .bytes(2, member.identityKey)
    .uint32(3, ROLE_CODE[member.role])
    .finish();
}

function encodeAction(action: GroupAction): Uint8Array {
  const writer = new ProtoWriter();
  switch (action.kind) {
    case 'create':
      writer.bytes(1, utf8(action.title));
      for (const member of action.members) writer.bytes(2, encodeMember(member));
      break;
    case 'add':
      writer.bytes(1, encodeMember(action.member));
      break;
    case 'remove':
    case 'promote':
    case 'demote':
      writer.bytes(1, utf8(action.username));
      break;
    case 'title':
      writer.bytes(1, utf8(action.title));
      break;
    case 'leave':
      break;
  }
  return writer.finish();
}

/** Encodes a change. @throws RangeError for values out of range. */
export function encodeChange(change: GroupChange): Uint8Array {
  return new ProtoWriter()
    .bytes(1, change.groupId)
    .uint64(2, change.version)
    .bytes(3, change.previousHash)
    .bytes(4, utf8(change.author))
    .bytes(ACTION_FIELD[change.action.kind], encodeAction(change.action))
    .finish();
}

/** Encodes a signed change for the wire. */
export function encodeSignedChange(signed: SignedGroupChange): Uint8Array {
  return new ProtoWriter().bytes(1, signed.change).bytes(2, signed.signature).finish();
}

function username(bytes: Uint8Array, name: string): string {
  const value = fromUtf8(bytes, name);
  if (!isCanonicalUsername(value)) throw invalid(`${name} is not canonical`);
  return value;
}

function title(bytes: Uint8Array): string {
  if (bytes.length < 1 || bytes.length > MAX_TITLE_BYTES) throw invalid(`title must be 1 to ${MAX_TITLE_BYTES} bytes`);
  return fromUtf8(bytes, 'title');
}

function decodeMember(bytes: Uint8Array): GroupMember {
  const fields = readProto(bytes);
  const name = username(requiredBytes(fields, 1, 'member username'), 'member username');
  const identityKey = requiredBytes(fields, 2, 'identity key').slice();
  try {
    deserializePublicKey(identityKey);
  } catch (cause) {
    throw invalid(`identity key of ${name} is not a public key`, cause);
  }
  const code = requiredUint32(fields, 3, 'role');
  const role = code === ROLE_CODE.admin ? 'admin' : code === ROLE_CODE.member ? 'member' : undefined;
  if (role === undefined) throw invalid(`unknown role ${code}`);
  return { username: name, identityKey, role };
}

function asMessage(value: ProtoValue | undefined, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalid(`${name} is not a message`);
  return value;
}

function decodeAction(field: number, body: Uint8Array): GroupAction {
  switch (field) {
    case ACTION_FIELD.create: {
      const members: GroupMember[] = [];
      const seen = new Set<string>();
      for (const [number, value] of readProtoFields(body)) {
        if (number !== 2) continue;
        if (members.length === MAX_GROUP_MEMBERS) throw invalid(`more than ${MAX_GROUP_MEMBERS} members`);
        const member = decodeMember(asMessage(value, 'member'));
        if (seen.has(member.username)) throw invalid(`${member.username} listed twice`);
        seen.add(member.username);
        members.push(member);
      }
      return { kind: 'create', title: title(requiredBytes(readProto(body), 1, 'title')), members };
    }
    case ACTION_FIELD.add:
      return { kind: 'add', member: decodeMember(requiredBytes(readProto(body), 1, 'member')) };
    case ACTION_FIELD.remove:
    case ACTION_FIELD.promote:
    case ACTION_FIELD.demote: {
      const kind = field === ACTION_FIELD.remove ? 'remove' : field === ACTION_FIELD.promote ? 'promote' : 'demote';
      return { kind, username: username(requiredBytes(readProto(body), 1, 'username'), 'username') };
    }
    case ACTION_FIELD.title:
      return { kind: 'title', title: title(requiredBytes(readProto(body), 1, 'title')) };
    default:
      readProto(body);
      return { kind: 'leave' };
  }
}

/** Runs a decoder, turning the protocol codec's errors into INVALID_CHANGE. */
function decoding<T>(decode: () => T): T {
  try {
    return decode();
  } catch (cause) {
    if (cause instanceof RosterError) throw cause;
    throw invalid(cause instanceof Error ? cause.message : 'malformed', cause);
  }
}

/**
 * Decodes and checks a change's shape: a 16-byte group id, a positive version,
 * a 32-byte previous hash, a canonical author, exactly one action with valid
 * fields. It does not check the change against any roster.
 * @throws RosterError `INVALID_CHANGE`, nothing else.
 */
export function decodeChange(bytes: Uint8Array): GroupChange {
  return decoding(() => {
    const fields = readProto(bytes);
    const groupId = requiredBytes(fields, 1, 'group id').slice();
    if (groupId.length !== GROUP_ID_LENGTH) throw invalid(`group id must be ${GROUP_ID_LENGTH} bytes`);
    const version = requiredUint64(fields, 2, 'version');
    if (version < 1) throw invalid('version must be at least 1');
    const previousHash = requiredBytes(fields, 3, 'previous hash').slice();
    if (previousHash.length !== HASH_LENGTH) throw invalid(`previous hash must be ${HASH_LENGTH} bytes`);
    const author = username(requiredBytes(fields, 4, 'author'), 'author');
    const actions = readProtoFields(bytes).filter(([field]) => field >= ACTION_FIELD.create && field <= ACTION_FIELD.leave);
    const [first, ...rest] = actions;
    if (first === undefined || rest.length > 0) throw invalid('a change holds exactly one action');
    const action = decodeAction(first[0], asMessage(first[1], 'action'));
    return { groupId, version, previousHash, author, action };
  });
}

/** Decodes a signed change from the wire. @throws RosterError `INVALID_CHANGE`, nothing else. */
export function decodeSignedChange(bytes: Uint8Array): SignedGroupChange {
  return decoding(() => {
    const fields = readProto(bytes);
    return { change: requiredBytes(fields, 1, 'change').slice(), signature: requiredBytes(fields, 2, 'signature').slice() };
  });
}

const find = (members: readonly GroupMember[], name: string) => members.find((m) => m.username === name);
const adminCount = (members: readonly GroupMember[]) => members.filter((m) => m.role === 'admin').length;

/**
 * Checks a signed change against the current roster (undefined before the
 * group exists) and returns the roster it produces. Never modifies its input;
 * on failure nothing is returned. The rules are in the module header.
 * @throws RosterError with the code of the first rule broken, nothing else.
 */
export async function applyChange(
  provider: CryptoProvider,
  roster: Roster | undefined,
  signed: SignedGroupChange,
): Promise<Roster> {
  const change = decodeChange(signed.change);
  const { action } = change;
  if (action.kind === 'create') {
    if (roster !== undefined || change.version !== 1) throw new RosterError('WRONG_VERSION', 'a create starts a new group at version 1');
    if (change.previousHash.some((b) => b !== 0)) throw new RosterError('BROKEN_CHAIN', 'a create follows no change');
  } else {
    if (roster === undefined) throw new RosterError('WRONG_VERSION', 'a group starts with a create');
    if (!constantTimeEqual(change.groupId, roster.id)) throw new RosterError('WRONG_GROUP', 'the change is for another group');
    if (change.version !== roster.version + 1) {
      throw new RosterError('WRONG_VERSION', `version ${change.version} does not follow ${roster.version}`);
    }
    if (!constantTimeEqual(change.previousHash, roster.hash)) throw new RosterError('BROKEN_CHAIN', 'the change forks the chain');
  }

  const members = action.kind === 'create' ? action.members : (roster?.members ?? []);
  const author = find(members, change.author);
  if (author === undefined) throw new RosterError('NOT_ENTITLED', `${change.author} is not a member`);
  const key = deserializePublicKey(author.identityKey);
  if (!(await xeddsaVerify(provider, key, concatBytes(CONTEXT, signed.change), signed.signature))) {
    throw new RosterError('INVALID_SIGNATURE', `the change is not signed by ${change.author}'s listed key`);
  }
  if (action.kind !== 'leave' && author.role !== 'admin') {
    throw new RosterError('NOT_ENTITLED', `${change.author} is not an admin`);
  }

  const next = nextState(roster, change.author, action);
  return {
    id: change.groupId.slice(),
    title: next.title,
    version: change.version,
    members: next.members,
    hash: await provider.sha256(signed.change),
  };
}

/** The title and members after an authenticated, entitled action (rules 5 and 6). */
function nextState(
  roster: Roster | undefined,
  author: string,
  action: GroupAction,
): { title: string; members: readonly GroupMember[] } {
  if (action.kind === 'create') return { title: action.title, members: action.members.map(copyMember) };
  if (roster === undefined) throw new RosterError('WRONG_VERSION', 'a group starts with a create');
  const current = roster.members;
  const keep = (members: GroupMember[]) => ({ title: roster.title, members });
  switch (action.kind) {
    case 'title':
      if (action.title === roster.title) throw invalid('the title is unchanged');
      return { title: action.title, members: current.map(copyMember) };
    case 'add':
      if (find(current, action.member.username) !== undefined) throw invalid(`${action.member.username} is already a member`);
      if (current.length >= MAX_GROUP_MEMBERS) throw invalid(`a group has at most ${MAX_GROUP_MEMBERS} members`);
      return keep([...current.map(copyMember), copyMember(action.member)]);
    case 'remove':
      if (action.username === author) throw invalid('members remove themselves with leave');
      if (find(current, action.username) === undefined) throw invalid(`${action.username} is not a member`);
      return keep(current.filter((m) => m.username !== action.username).map(copyMember));
    case 'promote':
    case 'demote': {
      const role: GroupRole = action.kind === 'promote' ? 'admin' : 'member';
      const target = find(current, action.username);
      if (target === undefined) throw invalid(`${action.username} is not a member`);
      if (target.role === role) throw invalid(`${action.username} is already ${role === 'admin' ? 'an admin' : 'a plain member'}`);
      if (role === 'member' && adminCount(current) === 1) throw new RosterError('LAST_ADMIN', 'the group would have no admin');
      return keep(current.map((m) => (m.username === action.username ? { ...copyMember(m), role } : copyMember(m))));
    }
    case 'leave': {
      const rest = current.filter((m) => m.username !== author).map(copyMember);
      if (rest.length > 0 && adminCount(rest) === 0) throw new RosterError('LAST_ADMIN', 'the last admin cannot leave members behind');
      return keep(rest);
    }
  }
}

const copyMember = (m: GroupMember): GroupMember => ({ username: m.username, identityKey: m.identityKey.slice(), role: m.role });

/**
 * Builds and signs the change that moves `roster` to its next version (a
 * create draws a fresh group id when `roster` is undefined). It does not check
 * the rules: {@link applyChange} does, on every device, including this one.
 * @throws RangeError for values out of range; TypeError without a roster for a non-create.
 */
export async function createChange(
  provider: CryptoProvider,
  identity: IdentityKeyPair,
  author: string,
  roster: Roster | undefined,
  action: GroupAction,
): Promise<SignedGroupChange> {
  if (roster === undefined && action.kind !== 'create') throw new TypeError('only a create starts a group');
  const change = encodeChange({
    groupId: roster === undefined ? provider.randomBytes(GROUP_ID_LENGTH) : roster.id,
    version: roster === undefined ? 1 : roster.version + 1,
    previousHash: roster === undefined ? new Uint8Array(HASH_LENGTH) : roster.hash,
    author,
    action,
  });
  const signature = await xeddsaSign(provider, identity.privateKey, concatBytes(CONTEXT, change));
  return { change, signature };
}
