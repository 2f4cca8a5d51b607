/**
 * This account's devices: the list from the device list the account's key
 * signed, unlinking, and linking either way: this device shows a code for a
 * new one, or approves the code a new device shows.
 */
import { useCallback, useEffect, useState, type SyntheticEvent } from 'react';

import { describe, useEvent, useParley } from './hooks.js';
import { Qr } from './Qr.js';

interface Device {
  readonly deviceId: number;
  readonly current: boolean;
}

export function Devices({ onBack }: { readonly onBack: () => void }) {
  const parley = useParley();
  const [devices, setDevices] = useState<readonly Device[]>([]);
  const [linkCode, setLinkCode] = useState<string>();
  const [approveCode, setApproveCode] = useState('');
  const [confirming, setConfirming] = useState<number>();
  const [busy, setBusy] = useState(false);
  const [status, setStatus] = useState<string>();
  const [error, setError] = useState<string>();

  const fail = (failure: unknown) => {
    setBusy(false);
    setError(describe(failure));
  };
  const load = useCallback(() => {
    parley.call('devices').then(setDevices, (failure: unknown) => { setError(describe(failure)); });
  }, [parley]);
  useEffect(load, [load]);
  useEvent('devices', load);
  useEvent('deviceLinked', ({ deviceId }) => {
    setLinkCode(undefined);
    setStatus(`Device ${deviceId} is linked.`);
    load();
  });
  useEvent('linkFailed', (failure) => {
    setLinkCode(undefined);
    setError(`Linking did not finish: ${failure.message}`);
  });
  useEffect(() => () => { void parley.call('cancelLink'); }, [parley]);

  const offer = () => {
    setError(undefined);
    setStatus(undefined);
    parley.call('startLink').then(setLinkCode, fail);
  };

  const approve = (event: SyntheticEvent) => {
    event.preventDefault();
    setError(undefined);
    setStatus('Linking the new device…');
    setBusy(true);
    parley.call('approveLink', approveCode.trim()).then(
      (deviceId) => {
        setBusy(false);
        setApproveCode('');
        setStatus(`Device ${deviceId} is linked.`);
        load();
      },
      (failure: unknown) => {
        setStatus(undefined);
        fail(failure);
      },
    );
  };

  const unlink = (deviceId: number) => {
    setConfirming(undefined);
    setError(undefined);
    parley.call('unlinkDevice', deviceId).then(() => {
      setStatus(`Device ${deviceId} is unlinked.`);
      load();
    }, fail);
  };

  return (
    <section className="devices" aria-labelledby="devices-heading">
      <header className="view-header">
        <button type="button" className="back" onClick={onBack} aria-label="Back to conversations">
          ←
        </button>
        <h2 id="devices-heading">Devices</h2>
      </header>
      {error !== undefined && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {status !== undefined && <p role="status">{status}</p>}

      <ul className="device-list" aria-label="Linked devices">
        {devices.map((d) => (
          <li key={d.deviceId}>
            <span>
              Device {d.deviceId}
              {d.current && <span className="this-device"> (this browser)</span>}
            </span>
            {!d.current &&
              (confirming === d.deviceId ? (
                <span className="confirm">
                  <button type="button" className="danger" onClick={() => { unlink(d.deviceId); }}>
                    Unlink device {d.deviceId}
                  </button>
                  <button type="button" className="secondary" onClick={() => { setConfirming(undefined); }}>
                    Keep
                  </button>
                </span>
              ) : (
                <button type="button" className="secondary" onClick={() => { setConfirming(d.deviceId); }}>
                  Unlink…
                </button>
              ))}
          </li>
        ))}
      </ul>

      <section className="card" aria-labelledby="approve-heading">
        <h3 id="approve-heading">Approve a device</h3>
        <p>A new device that shows a link code (a browser&apos;s &ldquo;Link this browser&rdquo;, or <code>parley link --request</code>) joins here.</p>
        <form onSubmit={approve}>
          <label htmlFor="approve-code">Link code from the new device</label>
          <textarea id="approve-code" rows={3} value={approveCode} onChange={(e) => { setApproveCode(e.target.value); }} required />
          <button type="submit" disabled={busy || approveCode.trim() === ''}>
            Approve
          </button>
        </form>
      </section>

      <section className="card" aria-labelledby="offer-heading">
        <h3 id="offer-heading">Link a new device from here</h3>
        {linkCode === undefined ? (
          <button type="button" onClick={offer}>
            Show a link code
          </button>
        ) : (
          <div className="link-code">
            <Qr value={linkCode} label="Link code as a QR code" />
            <label htmlFor="offer-code">Link code</label>
            <textarea id="offer-code" readOnly rows={3} value={linkCode} onFocus={(e) => { e.target.select(); }} />
            <p>
              On the new device run <code>parley link</code> and paste this code. Whoever has it can join your account: show it to no one else.
            </p>
            <p role="status">Waiting for the new device…</p>
          </div>
        )}
      </section>
    </section>
  );
}
