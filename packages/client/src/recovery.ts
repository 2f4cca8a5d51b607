/**
 * Recovering messages that could not be decrypted (a device restored from an
 * old backup, a lost session, a sender that lost its state):
 *
 *   receiver                                        sender (the failed envelope's device)
 *   records the failure (sender, device, server timestamp T)
 *   drops its session with that device and, in a fresh one,
 *   sends decryption-error{T, device} ─────────────► finds what it sent at T to the receiver,
 *                                                     resends it (resent_for = T) in the new session
 *   stores it (deduplicated), clears the record ◄────
 *
 * A sender keeps what it sent for RESEND_WINDOW_MS. What stays undecryptable
 * longer than UNDECRYPTABLE_GRACE_MS is counted, for the app to show.
 */
import { encodeContent, type Content } from './content.js';
import type { Context } from './context.js';
import { send } from './sender.js';
import { Transaction } from './store/kv.js';
import { json, parse, sessionKey } from './store/records.js';

/** How long sent messages are kept for resending: a device offline longer has lost them anyway. */
export const RESEND_WINDOW_MS = 3 * 24 * 3600 * 1000;
/** A failure is counted as undecryptable once its recovery has had this long. */
export const UNDECRYPTABLE_GRACE_MS = 60_000;

const pad = (n: number) => String(n).padStart(16, '0');

/**
 * Keeps what this device sent at server time `storedAt` to `to`, for a
 * resend. The server gives every send of one group commit the same time, so
 * the key ends with the content's own time, which this device never repeats.
 */
export function recordSent(tx: Transaction, storedAt: number, to: string, content: Content): void {
  tx.put('sent', `${pad(storedAt)}.${to}.${pad(content.sentAt)}`, json(content));
}

/**
 * Envelope ids remembered as processed. A redelivery comes right after a lost
 * acknowledgement, of at most a window of envelopes, so the newest ten
 * thousand are plenty; older ones are forgotten, to keep the store bounded.
 */
export const SEEN_RETAINED = 10_000;

/** Forgets all but the newest SEEN_RETAINED processed envelope ids. */
export async function pruneSeen(ctx: Context): Promise<void> {
  const seen = await ctx.store.list('seen', '');
  if (seen.length <= SEEN_RETAINED) return;
  await ctx.store.write(seen.slice(0, seen.length - SEEN_RETAINED).map(([key]) => ({ ns: 'seen', key, value: undefined })));
}

/** Forgets sent messages older than the resend window. */
export async function pruneSent(ctx: Context): Promise<void> {
  const cutoff = pad(ctx.now() - RESEND_WINDOW_MS);
  const tx = new Transaction(ctx.store);
  for (const [key] of await ctx.store.list('sent', '', { limit: 1000 })) {
    if (key >= cutoff) break;
    tx.delete('sent', key);
  }
  await tx.commit();
}

/**
 * A device's session is restarted at most this often: a burst of failures
 * (or of garbage a server injects) costs one fresh session, not one each.
 */
export const SESSION_RESET_INTERVAL_MS = 60_000;

/**
 * Asks `from` to resend what its `device` sent at server time `failedAt`, in
 * a fresh session with that device (restarted at most once per
 * SESSION_RESET_INTERVAL_MS; `resets` remembers when).
 */
export async function requestResend(ctx: Context, failed: { from: string; device: number; failedAt: number }, resets: Map<string, number>): Promise<void> {
  const address = sessionKey(failed.from, failed.device);
  const last = resets.get(address);
  if (last === undefined || ctx.now() - last >= SESSION_RESET_INTERVAL_MS) {
    resets.set(address, ctx.now());
    await ctx.exclusive(async () => {
      await ctx.store.write([{ ns: 'session', key: address, value: undefined }]);
    });
  }
  const content: Content = { kind: 'decryption-error', sentAt: ctx.now(), failedAt: failed.failedAt, sourceDevice: failed.device };
  await send(ctx, [{ username: failed.from, plaintext: encodeContent(content) }]);
}

/**
 * Resends what each recorded request asks for (the receiver recorded the
 * requests with the envelope). A resend is recorded as sent, like any send:
 * it goes to every device of the requester, and one that restarted its
 * session with this device meanwhile fails it too, and asks for it again.
 */
export async function answerResendRequests(ctx: Context): Promise<number> {
  let resent = 0;
  for (const [key] of await ctx.store.list('resendRequest', '')) {
    const tx = new Transaction(ctx.store);
    tx.delete('resendRequest', key);
    const requester = key.slice(17);
    const resentFor = Number(key.slice(0, 16));
    // Everything sent to the requester at that time (one commit can hold several sends); the separator ends the
    // name, so "ali" is never handed what was sent to "alice".
    for (const [, bytes] of await ctx.store.list('sent', `${key}.`)) {
      const content = parse<Content>(bytes);
      // A transcript goes back only to this account's own devices; anyone else gets only what was sent to them.
      const again: Content | undefined =
        content.kind === 'text' ? { ...content, resentFor } : content.kind === 'sync' && requester === ctx.local.username ? { ...content, message: { ...content.message, resentFor } } : undefined;
      if (again !== undefined) {
        recordSent(tx, await send(ctx, [{ username: requester, plaintext: encodeContent(again) }]), requester, again);
        resent++;
      }
    }
    await tx.commit();
  }
  return resent;
}

/** Envelopes still undecryptable after the grace period. */
export async function countUndecryptable(ctx: Context, graceMs: number): Promise<number> {
  const cutoff = ctx.now() - graceMs;
  return (await ctx.store.list('undecryptable', '')).filter(([, bytes]) => parse<{ at: number }>(bytes).at <= cutoff).length;
}
