/** Starting a conversation with a person, or a group with several. */
import { useState, type SyntheticEvent } from 'react';

import { describe, useParley } from './hooks.js';

export function NewChat({ onOpen, onBack }: { readonly onOpen: (id: string) => void; readonly onBack: () => void }) {
  const parley = useParley();
  const [username, setUsername] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  const start = (event: SyntheticEvent) => {
    event.preventDefault();
    const peer = username.trim().toLowerCase();
    setBusy(true);
    setError(undefined);
    // Fetching their key and devices first tells at once whether the account exists.
    parley.call('refreshContact', peer).then(
      () => { onOpen(peer); },
      (failure: unknown) => {
        setBusy(false);
        setError(describe(failure));
      },
    );
  };

  return (
    <section aria-labelledby="new-chat-heading">
      <header className="view-header">
        <button type="button" className="back" onClick={onBack} aria-label="Back to conversations">
          ←
        </button>
        <h2 id="new-chat-heading">New chat</h2>
      </header>
      <form className="card" onSubmit={start}>
        <label htmlFor="peer">Their username</label>
        <input id="peer" autoFocus value={username} onChange={(e) => { setUsername(e.target.value); }} autoCapitalize="none" spellCheck={false} required />
        {error !== undefined && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Start chat
        </button>
      </form>
    </section>
  );
}

export function NewGroup({ onOpen, onBack }: { readonly onOpen: (id: string) => void; readonly onBack: () => void }) {
  const parley = useParley();
  const [title, setTitle] = useState('');
  const [members, setMembers] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  const create = (event: SyntheticEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    const names = members.split(/[\s,]+/).filter((name) => name !== '');
    parley.call('createGroup', title.trim(), names).then(
      (group) => { onOpen(group.conversation); },
      (failure: unknown) => {
        setBusy(false);
        setError(describe(failure));
      },
    );
  };

  return (
    <section aria-labelledby="new-group-heading">
      <header className="view-header">
        <button type="button" className="back" onClick={onBack} aria-label="Back to conversations">
          ←
        </button>
        <h2 id="new-group-heading">New group</h2>
      </header>
      <form className="card" onSubmit={create}>
        <label htmlFor="group-title">Group name</label>
        <input id="group-title" autoFocus value={title} onChange={(e) => { setTitle(e.target.value); }} required />
        <label htmlFor="group-members">Members&apos; usernames, separated by commas</label>
        <input id="group-members" value={members} onChange={(e) => { setMembers(e.target.value); }} autoCapitalize="none" spellCheck={false} required />
        <p className="hint">Each change to the group is signed by the admin who makes it, and every member&apos;s devices check it: the server cannot slip anyone in.</p>
        {error !== undefined && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Create group
        </button>
      </form>
    </section>
  );
}
