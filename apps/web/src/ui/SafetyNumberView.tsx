/**
 * The safety number with one contact: 60 digits in twelve groups of five, the
 * same on both phones, and the QR code the other side can scan. Marking the
 * contact verified is the person's statement that they compared them.
 */
import { useCallback, useEffect, useState } from 'react';

import { describe, useEvent, useParley } from './hooks.js';
import { Qr } from './Qr.js';

interface Shown {
  readonly digits: string;
  readonly scannable: Uint8Array;
  readonly verified: boolean;
}

export function SafetyNumberView({ peer, onBack }: { readonly peer: string; readonly onBack: () => void }) {
  const parley = useParley();
  const [shown, setShown] = useState<Shown>();
  const [error, setError] = useState<string>();

  const load = useCallback(() => {
    parley.call('safetyNumber', peer).then(setShown, (failure: unknown) => { setError(describe(failure)); });
  }, [parley, peer]);
  useEffect(load, [load]);
  useEvent('identityChange', ({ username }) => { if (username === peer) load(); });

  const mark = (verified: boolean) => {
    setError(undefined);
    parley.call(verified ? 'verify' : 'unverify', peer).then(load, (failure: unknown) => { setError(describe(failure)); });
  };

  const groups = shown?.digits.match(/\d{5}/g) ?? [];
  return (
    <section className="safety" aria-labelledby="safety-heading">
      <header className="view-header">
        <button type="button" className="back always" onClick={onBack} aria-label={`Back to the conversation with ${peer}`}>
          ←
        </button>
        <h2 id="safety-heading">Safety number with {peer}</h2>
      </header>
      {error !== undefined && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {shown !== undefined && (
        <div className="safety-body">
          <Qr value={shown.scannable} label={`Safety number with ${peer} as a QR code`} />
          <ol className="digits" aria-label="Safety number" data-digits={shown.digits}>
            {groups.map((group, i) => (
              <li key={i}>{group}</li>
            ))}
          </ol>
          <p>
            Compare these numbers with the ones {peer} sees, in person or over a call you trust. If they match, no one stands between you: not even
            this server.
          </p>
          <p className={shown.verified ? 'verified' : 'unverified'} role="status">
            {shown.verified ? `You have verified ${peer}.` : `${peer} is not verified.`}
          </p>
          {shown.verified ? (
            <button type="button" className="secondary" onClick={() => { mark(false); }}>
              Clear verification
            </button>
          ) : (
            <button type="button" onClick={() => { mark(true); }}>
              Mark as verified
            </button>
          )}
        </div>
      )}
    </section>
  );
}
