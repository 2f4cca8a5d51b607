/**
 * What bench/load/index.ts asks of its generator process (generator.ts), over
 * the child-process IPC channel, one command at a time, and what it answers.
 */
import type { RunResult, Timing } from '../server/driver.js';

/** The ways the generator loads a server. */
export type WorkloadKind =
  /** Pre-built opaque bodies: the server's own cost. */
  | 'opaque'
  /** Real Double Ratchet messages between pairs of @parley/protocol sessions, encrypted and decrypted in the generator. */
  | 'protocol'
  /** Real ParleyClients (the SDK) in pairs, created for the run: texts, delivery receipts and all. */
  | 'sdk'
  /** The raw ws echo server, the ceiling. */
  | 'echo';

export type Command =
  /** Plans `count` accounts and makes the keys of the first `keptCount`, with stores and sessions between pairs (the rest are made as the first server registers them). */
  | { readonly op: 'prepare'; readonly count: number; readonly keptCount: number }
  /** Registers every account on the server at `url`. */
  | { readonly op: 'register'; readonly url: string; readonly wsUrl: string }
  /** Talks to the server at `url` from now on (the same storage, restarted). */
  | { readonly op: 'use'; readonly url: string; readonly wsUrl: string }
  /** Logs in the accounts below `upTo` that are not connected (tokens kept for `connect`). */
  | { readonly op: 'login'; readonly upTo: number }
  /** Connects the accounts below `upTo` that are not connected yet. */
  | { readonly op: 'connect'; readonly upTo: number }
  /** Closes the connections of accounts `downTo` and up. */
  | { readonly op: 'disconnect'; readonly downTo: number }
  /**
   * A closed loop (`lanes` senders × `inFlight`), then an open loop at
   * `openRate`/s, or at half the closed loop's rate. Parley lanes pair
   * account i with account lanes + i; echo lanes are one socket each.
   */
  | {
      readonly op: 'run';
      readonly workload: WorkloadKind;
      readonly lanes: number;
      readonly inFlight: number;
      readonly timing: Timing;
      readonly open: boolean;
      readonly echoUrl?: string;
    }
  /** An open loop alone at `rate`/s: the echo at a Parley run's offered rate, for latency at equal load. */
  | {
      readonly op: 'open';
      readonly workload: WorkloadKind;
      readonly lanes: number;
      readonly rate: number;
      readonly timing: Timing;
      readonly echoUrl?: string;
    }
  /** Queues `depth` envelopes for the last account (offline) from the first `senders`, then connects it and times the drain. */
  | { readonly op: 'drain'; readonly depth: number; readonly senders: number }
  /** Closes every connection and forgets the server. */
  | { readonly op: 'reset' };

export interface RunAnswer {
  readonly closed: RunResult;
  readonly open?: RunResult;
  /** The open loop's offered rate, per second. */
  readonly offered?: number;
  /** The generator's CPU over the closed loop, in cores. */
  readonly clientCores: number;
}

export interface DrainAnswer {
  /** Time to queue the envelopes (sends answered), ms. */
  readonly fillMs: number;
  /** From the `auth` frame to the `drained` frame with every envelope received and acknowledged, ms. */
  readonly drainMs: number;
}

export type Answer = { readonly id: number; readonly ok: true; readonly result: unknown } | { readonly id: number; readonly ok: false; readonly error: string };
