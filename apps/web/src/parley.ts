/**
 * The page's handle on its Parley device, which lives in a worker
 * (worker/parley.worker.ts): every WorkerApi method as a promise, and the
 * client's events to subscribe to.
 */
import type { WorkerApi } from './worker/api.js';
import type { EventMessage, Failure, PageEvents, Request, WorkerMessage } from './worker/messages.js';

/** A failed operation, as the page shows it: the SDK's code and its message for people. */
export class ParleyError extends Error {
  readonly code: Failure['code'];

  constructor(failure: Failure) {
    super(failure.message);
    this.name = 'ParleyError';
    this.code = failure.code;
  }
}

type Listener<K extends keyof PageEvents> = (value: PageEvents[K]) => void;

export class Parley {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  readonly #listeners = new Map<keyof PageEvents, Set<Listener<never>>>();
  #nextId = 1;

  constructor(worker: Worker) {
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<WorkerMessage>) => {
      const message = event.data;
      if ('event' in message) {
        this.#dispatch(message);
        return;
      }
      const waiting = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.ok) waiting?.resolve(message.value);
      else waiting?.reject(new ParleyError(message.error));
    };
    worker.onerror = (event) => {
      const error = new ParleyError({ code: 'UNEXPECTED', message: `the Parley worker failed: ${event.message}` });
      for (const waiting of this.#pending.values()) waiting.reject(error);
      this.#pending.clear();
    };
  }

  /** Runs `method` in the worker. Rejects with a ParleyError. */
  call<M extends keyof WorkerApi>(method: M, ...args: Parameters<WorkerApi[M]>): ReturnType<WorkerApi[M]> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, method, args } satisfies Request);
    }) as ReturnType<WorkerApi[M]>;
  }

  /** Calls `listener` for every `event` until the returned function is called. */
  on<K extends keyof PageEvents>(event: K, listener: Listener<K>): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  #dispatch({ event, value }: EventMessage): void {
    for (const listener of this.#listeners.get(event) ?? []) (listener as Listener<typeof event>)(value);
  }
}

/** Starts this page's worker. */
export function startParley(): Parley {
  return new Parley(new Worker(new URL('./worker/parley.worker.ts', import.meta.url), { type: 'module', name: 'parley' }));
}
