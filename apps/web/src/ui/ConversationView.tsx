/**
 * One conversation: its messages with delivery and read ticks, earlier ones
 * on request, who is typing, a banner when the contact's key changed, and the
 * composer. Opening it fetches the contact's key and devices again, so a
 * change made while the page was away shows at once.
 */
import { useCallback, useEffect, useLayoutEffect, useRef, useState, type SyntheticEvent, type KeyboardEvent } from 'react';

import type { StoredMessage } from '@parley/client';

import { describe, groupIdOf, useEvent, useNewest, useParley, when } from './hooks.js';

/** Messages shown at first, and added by each "earlier messages". */
const PAGE = 50;
/** A typing indicator without news for this long is stale (the other side may have gone). */
const TYPING_SHOWN_MS = 6_000;
/** While typing, "started" is repeated this often; "stopped" follows this long after the last key. */
const TYPING_REPEAT_MS = 4_000;
const TYPING_IDLE_MS = 5_000;

const TICKS: Record<StoredMessage['status'], { readonly mark: string; readonly label: string }> = {
  sending: { mark: '◷', label: 'Sending' },
  sent: { mark: '✓', label: 'Sent' },
  delivered: { mark: '✓✓', label: 'Delivered' },
  read: { mark: '✓✓', label: 'Read' },
  failed: { mark: '!', label: 'Not sent' },
  received: { mark: '', label: '' },
};

interface ContactState {
  readonly verified: boolean;
  readonly blocked: boolean;
  readonly keyChanged: boolean;
}

interface Props {
  readonly id: string;
  readonly title: string;
  readonly onBack: () => void;
  readonly onSafetyNumber: (peer: string) => void;
  /** Messages were marked read: the list's unread count changes. */
  readonly onRead: () => void;
}

export function ConversationView({ id, title, onBack, onSafetyNumber, onRead }: Props) {
  const parley = useParley();
  const groupId = groupIdOf(id);
  const [messages, setMessages] = useState<StoredMessage[]>([]);
  const [limit, setLimit] = useState(PAGE);
  const [contact, setContact] = useState<ContactState>();
  const [typing, setTyping] = useState(false);
  const [draft, setDraft] = useState('');
  const [error, setError] = useState<string>();
  const list = useRef<HTMLOListElement>(null);
  const stickToBottom = useRef(true);
  const typingSent = useRef({ at: 0, idle: undefined as ReturnType<typeof setTimeout> | undefined });

  const newest = useNewest();
  const load = useCallback(() => {
    const loading = groupId === undefined ? parley.call('conversation', id, limit) : parley.call('groupConversation', groupId, limit);
    newest(loading, setMessages, (failure: unknown) => { setError(describe(failure)); });
  }, [parley, id, groupId, limit, newest]);

  const loadContact = useCallback(() => {
    if (groupId !== undefined) return;
    parley.call('contact', id).then(setContact, (failure: unknown) => { setError(describe(failure)); });
  }, [parley, id, groupId]);

  useEffect(load, [load]);
  useEffect(() => {
    if (groupId !== undefined) return;
    // A key or device change made while this page was away is found now, and shows as the banner.
    parley.call('refreshContact', id).then(loadContact, (failure: unknown) => {
      setError(describe(failure));
      loadContact();
    });
  }, [parley, id, groupId, loadContact]);

  useEvent('message', (m) => {
    if (m.conversation !== id) return;
    if (m.direction === 'incoming') setTyping(false); // their message ends their typing
    load();
  });
  useEvent('status', (m) => { if (m.conversation === id) load(); });
  useEvent('identityChange', ({ username }) => { if (username === id) loadContact(); });

  // A typing indicator clears itself, in case "stopped" never comes.
  useEffect(() => {
    if (!typing) return;
    const timer = setTimeout(() => { setTyping(false); }, TYPING_SHOWN_MS);
    return () => { clearTimeout(timer); };
  }, [typing, messages]);
  useEvent('typing', ({ from, typing: now }) => { if (from === id) setTyping(now); });

  // What is on screen while the page is visible has been read: say so (receipts for people, locally for groups).
  const unread = messages.some((m) => m.direction === 'incoming' && m.kind === 'text' && m.status === 'received');
  useEffect(() => {
    if (!unread) return;
    const markRead = () => {
      if (document.visibilityState !== 'visible') return;
      const marking = groupId === undefined ? parley.call('markRead', id) : parley.call('markGroupRead', groupId);
      marking.then(() => { load(); onRead(); }, (failure: unknown) => { setError(describe(failure)); });
    };
    markRead();
    document.addEventListener('visibilitychange', markRead);
    return () => { document.removeEventListener('visibilitychange', markRead); };
  }, [unread, parley, id, groupId, load, onRead]);

  // New messages scroll into view if the reader was at the bottom; earlier ones loaded at the top keep the place.
  const previousHeight = useRef(0);
  useLayoutEffect(() => {
    const element = list.current;
    if (element === null) return;
    if (stickToBottom.current) element.scrollTop = element.scrollHeight;
    else element.scrollTop += element.scrollHeight - previousHeight.current;
    previousHeight.current = element.scrollHeight;
  }, [messages]);

  const onScroll = () => {
    const element = list.current;
    if (element === null) return;
    stickToBottom.current = element.scrollHeight - element.scrollTop - element.clientHeight < 40;
  };

  const earlier = () => {
    stickToBottom.current = false;
    if (list.current !== null) previousHeight.current = list.current.scrollHeight;
    setLimit((n) => n + PAGE);
  };

  const sayTyping = (now: boolean) => {
    if (groupId !== undefined) return; // typing in groups would tell every member's devices; not yet
    parley.call('setTyping', id, now).catch(() => undefined); // best effort: a lost typing indicator is no loss
  };

  const onDraft = (text: string) => {
    setDraft(text);
    const state = typingSent.current;
    clearTimeout(state.idle);
    if (text === '') {
      if (state.at !== 0) sayTyping(false);
      state.at = 0;
      return;
    }
    if (Date.now() - state.at > TYPING_REPEAT_MS) {
      state.at = Date.now();
      sayTyping(true);
    }
    state.idle = setTimeout(() => {
      state.at = 0;
      sayTyping(false);
    }, TYPING_IDLE_MS);
  };

  const send = (event?: SyntheticEvent) => {
    event?.preventDefault();
    const text = draft.trim();
    if (text === '') return;
    setError(undefined);
    setDraft('');
    clearTimeout(typingSent.current.idle);
    typingSent.current.at = 0;
    stickToBottom.current = true;
    const sending = groupId === undefined ? parley.call('sendText', id, text) : parley.call('sendGroupText', groupId, text);
    sending.catch((failure: unknown) => {
      setError(describe(failure));
      setDraft((current) => (current === '' ? text : current)); // nothing typed is lost
    });
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) send(event);
  };

  const verify = () => { onSafetyNumber(id); };
  const dismiss = () => {
    parley.call('dismissKeyChange', id).then(loadContact, (failure: unknown) => { setError(describe(failure)); });
  };

  return (
    <section className="conversation" aria-label={`Conversation with ${title}`}>
      <header className="view-header">
        <button type="button" className="back" onClick={onBack} aria-label="Back to conversations">
          ←
        </button>
        <h2>
          {groupId !== undefined && <span className="group-mark" aria-hidden="true">#</span>}
          {title}
          {contact?.verified === true && (
            <span className="verified" title="Safety number verified">
              ✓ Verified
            </span>
          )}
        </h2>
        {groupId === undefined && (
          <button type="button" className="secondary" onClick={verify}>
            Safety number
          </button>
        )}
      </header>

      {contact !== undefined && (contact.blocked || contact.keyChanged) && (
        <div className={`banner ${contact.blocked ? 'danger' : 'warning'}`} role="alert">
          <p>
            {contact.blocked
              ? `${id}'s safety number changed. You had verified ${id}, so sending is paused until you compare safety numbers again.`
              : `${id}'s safety number changed. This can mean a new phone, or someone in the middle: compare safety numbers to be sure.`}
          </p>
          <div className="banner-actions">
            <button type="button" onClick={verify}>
              Verify safety number
            </button>
            {!contact.blocked && (
              <button type="button" className="secondary" onClick={dismiss}>
                Dismiss
              </button>
            )}
          </div>
        </div>
      )}

      <ol className="messages" ref={list} onScroll={onScroll} aria-label="Messages" aria-live="polite" tabIndex={0}>
        {messages.length >= limit && (
          <li className="earlier">
            <button type="button" className="secondary" onClick={earlier}>
              Earlier messages
            </button>
          </li>
        )}
        {messages.map((m) => (
          <Message key={`${m.sentAt}.${m.author}.${m.authorDevice}`} message={m} showAuthor={groupId !== undefined} />
        ))}
      </ol>

      <p className="typing" aria-live="polite">
        {typing ? `${id} is typing…` : ''}
      </p>
      {error !== undefined && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <form className="composer" onSubmit={send}>
        <label htmlFor="composer" className="visually-hidden">
          Message
        </label>
        <textarea
          id="composer"
          autoFocus
          value={draft}
          rows={1}
          placeholder={`Message ${title}`}
          onChange={(e) => { onDraft(e.target.value); }}
          onKeyDown={onKeyDown}
          maxLength={65_536}
        />
        <button type="submit" disabled={draft.trim() === ''}>
          Send
        </button>
      </form>
    </section>
  );
}

function Message({ message: m, showAuthor }: { readonly message: StoredMessage; readonly showAuthor: boolean }) {
  if (m.kind === 'notice') {
    return (
      <li className="notice" data-kind="notice">
        {m.body}
      </li>
    );
  }
  const tick = TICKS[m.status];
  return (
    <li className={`message ${m.direction}`} data-kind={m.kind} data-status={m.status}>
      {showAuthor && m.direction === 'incoming' && <span className="author">{m.author}</span>}
      <p className="body">{m.kind === 'unsupported' ? 'A message this version of Parley cannot show.' : m.body}</p>
      <span className="meta">
        <time dateTime={new Date(m.sentAt).toISOString()}>{when(m.sentAt)}</time>
        {m.direction === 'outgoing' && (
          <span className={`tick ${m.status}`} role="img" aria-label={tick.label} title={tick.label}>
            {tick.mark}
          </span>
        )}
      </span>
    </li>
  );
}
