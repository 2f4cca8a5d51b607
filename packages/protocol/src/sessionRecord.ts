/**
 * Everything known about sessions with one remote device: the current session
 * and up to ARCHIVED_STATES_MAX_LENGTH previous ones, newest first, which
 * still decrypt messages the peer sent before it moved on (Sesame, §2 and §3).
 * Records are immutable values.
 */
import { constantTimeEqual } from '@parley/crypto';

import { ARCHIVED_STATES_MAX_LENGTH } from './limits.js';
import type { SessionState } from './sessionState.js';

export interface SessionRecord {
  readonly current: SessionState | undefined;
  /** Archived sessions, newest first. */
  readonly previous: readonly SessionState[];
}

export const EMPTY_RECORD: SessionRecord = { current: undefined, previous: [] };

/** An archived state never again sends prekey information. */
const archived = (state: SessionState): SessionState =>
  state.pendingPreKey === undefined ? state : { ...state, pendingPreKey: undefined };

/** `record` with `state` as its current session, the old current one archived. */
export function promoteState(record: SessionRecord, state: SessionState): SessionRecord {
  const previous = record.current === undefined ? record.previous : [archived(record.current), ...record.previous];
  return { current: state, previous: previous.slice(0, ARCHIVED_STATES_MAX_LENGTH) };
}

/** `record` with archived session `index` replaced by `state` and promoted to current. */
export function promoteArchived(record: SessionRecord, index: number, state: SessionState): SessionRecord {
  const previous = record.previous.filter((_, i) => i !== index);
  return promoteState({ current: record.current, previous }, state);
}

/**
 * The record with the session built from Alice's `baseKey` as current, if it
 * has one: a second PreKeySignalMessage for a known session must reuse it.
 */
export function promoteMatchingSession(record: SessionRecord, version: number, baseKey: Uint8Array): SessionRecord | undefined {
  const matches = (state: SessionState) => state.version === version && constantTimeEqual(state.aliceBaseKey, baseKey);
  if (record.current !== undefined && matches(record.current)) return record;
  const index = record.previous.findIndex(matches);
  if (index < 0) return undefined;
  return promoteArchived(record, index, record.previous[index] as SessionState);
}
