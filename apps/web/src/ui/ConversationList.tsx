/** The conversation list: newest first, each with its last message and unread count. */
import type { StoredMessage } from '@parley/client';

import { groupIdOf, when } from './hooks.js';

export interface ConversationSummary {
  readonly id: string;
  readonly title: string;
  readonly last: StoredMessage | undefined;
  readonly unread: number;
}

function preview(summary: ConversationSummary): string {
  const last = summary.last;
  if (last === undefined) return 'No messages yet';
  const prefix = last.direction === 'outgoing' ? 'You: ' : groupIdOf(summary.id) !== undefined && last.kind === 'text' ? `${last.author}: ` : '';
  return prefix + last.body;
}

export function ConversationList({ summaries, current, onOpen }: { readonly summaries: readonly ConversationSummary[]; readonly current: string | undefined; readonly onOpen: (id: string) => void }) {
  if (summaries.length === 0) return <p className="empty">No conversations yet.</p>;
  return (
    <ul className="conversations">
      {summaries.map((s) => (
        <li key={s.id}>
          <button
            type="button"
            className="conversation-item"
            aria-current={s.id === current ? 'true' : undefined}
            aria-label={`${s.title}${s.unread > 0 ? `, ${s.unread} unread` : ''}`}
            onClick={() => { onOpen(s.id); }}
          >
            <span className="title">
              {groupIdOf(s.id) !== undefined && <span className="group-mark" aria-hidden="true">#</span>}
              {s.title}
            </span>
            {s.last !== undefined && <time dateTime={new Date(s.last.sentAt).toISOString()}>{when(s.last.sentAt)}</time>}
            <span className="preview">{preview(s)}</span>
            {s.unread > 0 && (
              <span className="unread" data-testid="unread">
                {s.unread}
              </span>
            )}
          </button>
        </li>
      ))}
    </ul>
  );
}
