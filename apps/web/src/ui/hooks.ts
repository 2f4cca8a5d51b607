/** What every screen shares: the device in the worker, its events, and how a failure reads. */
import { createContext, useCallback, useContext, useEffect, useRef, useState } from 'react';

import { ParleyError, type Parley } from '../parley.js';
import type { PageEvents, Session } from '../worker/messages.js';

export const ParleyContext = createContext<Parley | undefined>(undefined);
export const SessionContext = createContext<Session | undefined>(undefined);

export function useParley(): Parley {
  const parley = useContext(ParleyContext);
  if (parley === undefined) throw new Error('useParley outside <ParleyContext>');
  return parley;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (session === undefined) throw new Error('useSession before an account is open');
  return session;
}

/** Calls the latest `listener` for every `event` while the component is mounted. */
export function useEvent<K extends keyof PageEvents>(event: K, listener: (value: PageEvents[K]) => void): void {
  const latest = useRef(listener);
  latest.current = listener;
  const parley = useParley();
  useEffect(() => parley.on(event, (value) => { latest.current(value); }), [parley, event]);
}

/** A failure as one sentence for the person using Parley. */
export function describe(error: unknown): string {
  if (error instanceof ParleyError) return error.code === 'UNEXPECTED' ? `Something went wrong: ${error.message}` : error.message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Loads that may overlap (a reload per event): only the newest one's answer
 * is applied, so an older answer arriving late never overwrites a newer one.
 */
export function useNewest() {
  const newest = useRef(0);
  return useCallback(<T>(loading: Promise<T>, apply: (value: T) => void, fail: (failure: unknown) => void) => {
    const ticket = ++newest.current;
    loading.then(
      (value) => { if (ticket === newest.current) apply(value); },
      fail,
    );
  }, []);
}

/** A form's action: `busy` while it runs, and its failure as one sentence in `error`. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = <T>(action: Promise<T>, done?: (value: T) => void) => {
    setBusy(true);
    setError(undefined);
    action.then(
      (value) => {
        setBusy(false);
        done?.(value);
      },
      (failure: unknown) => {
        setBusy(false);
        setError(describe(failure));
      },
    );
  };
  return { busy, error, setError, run };
}

/** A conversation id names a group (`group:<hex>`) or a person (their username). */
export const groupIdOf = (conversation: string): string | undefined => (conversation.startsWith('group:') ? conversation.slice('group:'.length) : undefined);

const time = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const day = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

/** A message time: the hour today, the day before that. */
export function when(ms: number): string {
  const date = new Date(ms);
  return date.toDateString() === new Date().toDateString() ? time.format(date) : day.format(date);
}
