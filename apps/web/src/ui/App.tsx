/**
 * The web client: a welcome screen until this browser holds an account, then
 * the messenger. Opening is from IndexedDB, so a reload lands where it was.
 */
import { useEffect, useState } from 'react';

import type { Parley } from '../parley.js';
import type { Session } from '../worker/messages.js';
import { describe, ParleyContext, SessionContext } from './hooks.js';
import { Messenger } from './Messenger.js';
import { Welcome } from './Welcome.js';

type Phase = { readonly kind: 'opening' } | { readonly kind: 'welcome' } | { readonly kind: 'open'; readonly session: Session } | { readonly kind: 'failed'; readonly message: string };

export function App({ parley }: { readonly parley: Parley }) {
  const [phase, setPhase] = useState<Phase>({ kind: 'opening' });

  useEffect(() => {
    const off = parley.on('session', (session) => { setPhase({ kind: 'open', session }); });
    parley.call('open').then(
      (session) => { setPhase(session === undefined ? { kind: 'welcome' } : { kind: 'open', session }); },
      (error: unknown) => { setPhase({ kind: 'failed', message: describe(error) }); },
    );
    return off;
  }, [parley]);

  return (
    <ParleyContext.Provider value={parley}>
      {phase.kind === 'opening' && <p className="splash" role="status">Opening Parley…</p>}
      {phase.kind === 'failed' && (
        <main className="splash">
          <h1>Parley cannot open here</h1>
          <p role="alert">{phase.message}</p>
        </main>
      )}
      {phase.kind === 'welcome' && <Welcome />}
      {phase.kind === 'open' && (
        <SessionContext.Provider value={phase.session}>
          <Messenger />
        </SessionContext.Provider>
      )}
    </ParleyContext.Provider>
  );
}
