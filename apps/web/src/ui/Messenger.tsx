/**
 * The messenger once an account is open: the conversation list beside the
 * open view (a conversation, a safety number, devices, or a form to start
 * something). On a phone-wide screen one of the two shows at a time.
 */
import { useCallback, useEffect, useState } from 'react';

import type { ConnectionState } from '@parley/client';

import { ConversationList, type ConversationSummary } from './ConversationList.js';
import { ConversationView } from './ConversationView.js';
import { Devices } from './Devices.js';
import { describe, groupIdOf, useEvent, useNewest, useParley, useSession } from './hooks.js';
import { NewChat, NewGroup } from './NewConversation.js';
import { SafetyNumberView } from './SafetyNumberView.js';

export type View =
  | { readonly kind: 'none' }
  | { readonly kind: 'conversation'; readonly id: string }
  | { readonly kind: 'safety'; readonly peer: string }
  | { readonly kind: 'devices' }
  | { readonly kind: 'newChat' }
  | { readonly kind: 'newGroup' };

const CONNECTION_LABELS: Record<ConnectionState, string> = { connecting: 'Connecting…', online: 'Online', offline: 'Offline: reconnecting', closed: 'Disconnected' };

export function Messenger() {
  const parley = useParley();
  const session = useSession();
  const [view, setView] = useState<View>({ kind: 'none' });
  const [summaries, setSummaries] = useState<ConversationSummary[]>([]);
  const [connection, setConnection] = useState<ConnectionState>('connecting');
  const [error, setError] = useState<string>();

  const newest = useNewest();
  const reload = useCallback(() => {
    newest(
      Promise.all([parley.call('conversations'), parley.call('groups')]),
      ([conversations, groups]) => {
        const titles = new Map(groups.map((g) => [g.conversation, g.title]));
        const listed: ConversationSummary[] = conversations.map((c) => ({ id: c.username, title: titles.get(c.username) ?? c.username, last: c.last, unread: c.unread }));
        // A group with no message yet is a conversation too.
        for (const g of groups) if (!listed.some((c) => c.id === g.conversation)) listed.push({ id: g.conversation, title: g.title, last: undefined, unread: 0 });
        setSummaries(listed);
      },
      (failure: unknown) => { setError(describe(failure)); },
    );
  }, [parley, newest]);

  useEffect(reload, [reload]);
  useEvent('message', reload);
  useEvent('status', reload);
  useEvent('group', reload);
  useEvent('connection', ({ state }) => { setConnection(state); });

  const open = (next: View) => {
    setError(undefined);
    setView(next);
  };
  const current = view.kind === 'conversation' ? view.id : undefined;

  return (
    <div className={`messenger ${view.kind === 'none' ? 'list-only' : 'view-open'}`}>
      <aside className="sidebar" aria-label="Conversations">
        <header className="sidebar-header">
          <div>
            <h1 className="me">{session.username}</h1>
            <p className={`connection ${connection}`} role="status">
              {CONNECTION_LABELS[connection]}
            </p>
          </div>
          <nav aria-label="Actions" className="actions">
            <button type="button" onClick={() => { open({ kind: 'newChat' }); }}>
              New chat
            </button>
            <button type="button" onClick={() => { open({ kind: 'newGroup' }); }}>
              New group
            </button>
            <button type="button" onClick={() => { open({ kind: 'devices' }); }}>
              Devices
            </button>
          </nav>
        </header>
        {error !== undefined && <p className="error" role="alert">{error}</p>}
        <ConversationList summaries={summaries} current={current} onOpen={(id) => { open({ kind: 'conversation', id }); }} />
      </aside>
      <main className="view">
        {view.kind === 'none' && <p className="placeholder">Choose a conversation, or start one with New chat.</p>}
        {view.kind === 'conversation' && (
          <ConversationView
            key={view.id}
            id={view.id}
            title={summaries.find((s) => s.id === view.id)?.title ?? groupIdOf(view.id) ?? view.id}
            onBack={() => { open({ kind: 'none' }); }}
            onSafetyNumber={(peer) => { open({ kind: 'safety', peer }); }}
            onRead={reload}
          />
        )}
        {view.kind === 'safety' && <SafetyNumberView peer={view.peer} onBack={() => { open({ kind: 'conversation', id: view.peer }); }} />}
        {view.kind === 'devices' && <Devices onBack={() => { open({ kind: 'none' }); }} />}
        {view.kind === 'newChat' && <NewChat onOpen={(id) => { open({ kind: 'conversation', id }); }} onBack={() => { open({ kind: 'none' }); }} />}
        {view.kind === 'newGroup' && <NewGroup onOpen={(id) => { open({ kind: 'conversation', id }); }} onBack={() => { open({ kind: 'none' }); }} />}
      </main>
    </div>
  );
}
