/** The first screen: create an account on this server, or link this browser to an account on another device. */
import { useState, type SyntheticEvent } from 'react';

import { describe, useEvent, useParley } from './hooks.js';
import { Qr } from './Qr.js';

export function Welcome() {
  const parley = useParley();
  const [username, setUsername] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [joinCode, setJoinCode] = useState<string>();

  useEvent('linkFailed', (failure) => {
    setJoinCode(undefined);
    setError(`Linking did not finish: ${failure.message}`);
  });

  const create = (event: SyntheticEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    // Success arrives as the `session` event, which App turns into the messenger.
    parley.call('create', username.trim()).catch((failure: unknown) => {
      setError(describe(failure));
      setBusy(false);
    });
  };

  const requestLink = () => {
    setError(undefined);
    parley.call('requestLink').then(setJoinCode, (failure: unknown) => { setError(describe(failure)); });
  };

  const cancel = () => {
    void parley.call('cancelLink');
    setJoinCode(undefined);
  };

  return (
    <main className="welcome">
      <h1>Parley</h1>
      <p className="tagline">End-to-end encrypted messages. This server cannot read them.</p>
      {error !== undefined && <p className="error" role="alert">{error}</p>}

      <section aria-labelledby="create-heading" className="card">
        <h2 id="create-heading">Create an account</h2>
        <form onSubmit={create}>
          <label htmlFor="username">Username</label>
          <input
            id="username"
            value={username}
            onChange={(e) => { setUsername(e.target.value); }}
            autoComplete="username"
            autoCapitalize="none"
            spellCheck={false}
            pattern="[A-Za-z][A-Za-z0-9_]{2,31}"
            title="3–32 letters, digits or _, starting with a letter"
            required
          />
          <button type="submit" disabled={busy}>
            {busy ? 'Creating keys…' : 'Create account'}
          </button>
        </form>
      </section>

      <section aria-labelledby="link-heading" className="card">
        <h2 id="link-heading">Use an account you already have</h2>
        {joinCode === undefined ? (
          <>
            <p>Link this browser as a new device of your account. Your contacts and recent messages come with it, encrypted end to end.</p>
            <button type="button" onClick={requestLink}>
              Link this browser
            </button>
          </>
        ) : (
          <div className="link-code">
            <Qr value={joinCode} label="Link code as a QR code" />
            <p>
              On a device already linked, approve this browser: in Parley on the web open <strong>Devices → Approve a device</strong>, or run{' '}
              <code>parley devices approve</code> and paste this code.
            </p>
            <label htmlFor="join-code">Link code</label>
            <textarea id="join-code" readOnly value={joinCode} rows={3} onFocus={(e) => { e.target.select(); }} />
            <p role="status">Waiting for approval…</p>
            <button type="button" className="secondary" onClick={cancel}>
              Cancel
            </button>
          </div>
        )}
      </section>
    </main>
  );
}
