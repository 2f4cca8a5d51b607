/** Starting a conversation with a person, or a group with several. */
import { useState, type SyntheticEvent } from 'react';

import { useAction, useParley } from './hooks.js';

interface Props {
  readonly onOpen: (id: string) => void;
  readonly onBack: () => void;
}

export function NewChat({ onOpen, onBack }: Props) {
  const parley = useParley();
  const [username, setUsername] = useState('');
  const { busy, error, run } = useAction();

  const start = (event: SyntheticEvent) => {
    event.preventDefault();
    const peer = username.trim().toLowerCase();
    // Fetching their key and devices first tells at once whether the account exists.
    run(parley.call('refreshContact', peer), () => { onOpen(peer); });
  };

  return (
    <section aria-labelledby="new-chat-heading">
      <Header id="new-chat-heading" title="New chat" onBack={onBack} />
      <form className="card" onSubmit={start}>
        <label htmlFor="peer">Their username</label>
        <input id="peer" autoFocus value={username} onChange={(e) => { setUsername(e.target.value); }} autoCapitalize="none" spellCheck={false} required />
        <Failure error={error} />
        <button type="submit" disabled={busy}>
          Start chat
        </button>
      </form>
    </section>
  );
}

export function NewGroup({ onOpen, onBack }: Props) {
  const parley = useParley();
  const [title, setTitle] = useState('');
  const [members, setMembers] = useState('');
  const { busy, error, run } = useAction();

  const create = (event: SyntheticEvent) => {
    event.preventDefault();
    const names = members.split(/[\s,]+/).filter((name) => name !== '');
    run(parley.call('createGroup', title.trim(), names), (group) => { onOpen(group.conversation); });
  };

  return (
    <section aria-labelledby="new-group-heading">
      <Header id="new-group-heading" title="New group" onBack={onBack} />
      <form className="card" onSubmit={create}>
        <label htmlFor="group-title">Group name</label>
        <input id="group-title" autoFocus value={title} onChange={(e) => { setTitle(e.target.value); }} required />
        <label htmlFor="group-members">Members&apos; usernames, separated by commas</label>
        <input id="group-members" value={members} onChange={(e) => { setMembers(e.target.value); }} autoCapitalize="none" spellCheck={false} required />
        <p className="hint">Each change to the group is signed by the admin who makes it, and every member&apos;s devices check it: the server cannot slip anyone in.</p>
        <Failure error={error} />
        <button type="submit" disabled={busy}>
          Create group
        </button>
      </form>
    </section>
  );
}

function Header({ id, title, onBack }: { readonly id: string; readonly title: string; readonly onBack: () => void }) {
  return (
    <header className="view-header">
      <button type="button" className="back" onClick={onBack} aria-label="Back to conversations">
        ←
      </button>
      <h2 id={id}>{title}</h2>
    </header>
  );
}

function Failure({ error }: { readonly error: string | undefined }) {
  return error === undefined ? null : (
    <p className="error" role="alert">
      {error}
    </p>
  );
}
