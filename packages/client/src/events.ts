/**
 * Typed events, for a UI to bind to: listeners, and async iterators that
 * buffer what arrives between two reads.
 */
export class Events<Map extends Record<string, unknown>> {
  readonly #listeners = new Map<keyof Map, Set<(value: never) => void>>();

  /** Calls `listener` for every event of `name` until the returned function is called. */
  on<K extends keyof Map>(name: K, listener: (value: Map[K]) => void): () => void {
    let set = this.#listeners.get(name);
    if (set === undefined) this.#listeners.set(name, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  emit<K extends keyof Map>(name: K, value: Map[K]): void {
    for (const listener of this.#listeners.get(name) ?? []) {
      try {
        (listener as (value: Map[K]) => void)(value);
      } catch {
        // A listener's bug must not stop delivery to the others, nor the client.
      }
    }
  }

  /**
   * Every event of `name` from now on, in order. The iterator ends when
   * `signal` aborts or the consumer stops (break/return).
   */
  iterate<K extends keyof Map>(name: K, signal?: AbortSignal): AsyncIterableIterator<Map[K]> {
    const buffered: Map[K][] = [];
    let wake: (() => void) | undefined;
    let done = signal?.aborted === true;
    const off = this.on(name, (value) => {
      buffered.push(value);
      wake?.();
    });
    const finish = () => {
      done = true;
      off();
      wake?.();
    };
    signal?.addEventListener('abort', finish, { once: true });
    const iterator: AsyncIterableIterator<Map[K]> = {
      async next(): Promise<IteratorResult<Map[K]>> {
        while (buffered.length === 0 && !done) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        const value = buffered.shift();
        return value === undefined ? { done: true, value: undefined } : { done: false, value };
      },
      async return(): Promise<IteratorResult<Map[K]>> {
        finish();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }
}
