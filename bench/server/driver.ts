/**
 * Load drivers shared by the Parley workload and its ws echo peer: a closed
 * loop (each lane keeps a fixed number of messages in flight) and an open loop
 * (sends paced at a fixed total rate, whatever the answers), both counting
 * deliveries and their latencies in a window after a warm-up.
 *
 * Every time is performance.now() in this process: a message carries the
 * time it was sent (for the open loop, the time it was due, so a client that
 * falls behind shows up as latency instead of hiding it), and its latency is
 * the time it arrived minus that.
 */

/** One sender's path: a Parley sender and its recipient, or one echo client. */
export interface Lane {
  /** Sends one message that carries `sentAt`. */
  send(sentAt: number): void;
}

/** What a workload reports back to the driver. */
export interface Sink {
  /** The lane's send was answered (Parley: `sent` after the commit; echo: the reply); the closed loop sends again. */
  completed(lane: number): void;
  /** A message reached its recipient at `now`. */
  delivered(sentAt: number, now: number): void;
  /** The workload broke (a refused send, an unexpected frame, a closed socket). */
  failed(error: Error): void;
}

export interface Workload {
  readonly lanes: readonly Lane[];
  /** Resolves once the recipients have acknowledged everything delivered so far (Parley), or at once. */
  settle(): Promise<void>;
}

export interface Timing {
  readonly warmupMs: number;
  readonly windowMs: number;
}

export interface RunResult {
  /** Deliveries per second in the window. */
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly delivered: number;
}

/** Sends still undelivered this long after the load stops mean something is lost. */
const QUIESCE_TIMEOUT_MS = 30_000;
/** The open loop's pacing tick: Node timers fire no more often than about once a millisecond. */
const PACE_TICK_MS = 1;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Nearest-rank percentile of sorted values (NaN when there are none). */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  // The epsilon keeps float error (99.9 / 100 × 1,000 = 999.0000000000001) from taking the next rank.
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length - 1e-9) - 1))]!;
}

/** Routes a workload's events to whichever run is current. */
export class Driver implements Sink {
  #sent = 0;
  #delivered = 0;
  #windowStart = Number.POSITIVE_INFINITY;
  #windowEnd = Number.NEGATIVE_INFINITY;
  #latencies: number[] = [];
  #onCompleted: (lane: number) => void = () => undefined;
  #failure: Error | undefined;

  completed(lane: number): void {
    this.#onCompleted(lane);
  }

  delivered(sentAt: number, now: number): void {
    this.#delivered++;
    if (now >= this.#windowStart && now < this.#windowEnd) this.#latencies.push(now - sentAt);
  }

  failed(error: Error): void {
    this.#failure ??= error;
  }

  /** Every lane keeps `inFlight` sends outstanding, sending again on each answer. */
  async closedLoop(workload: Workload, inFlight: number, timing: Timing): Promise<RunResult> {
    let running = true;
    const send = (lane: number) => {
      this.#sent++;
      workload.lanes[lane]!.send(performance.now());
    };
    this.#onCompleted = (lane) => {
      if (running) send(lane);
    };
    return this.#run(workload, timing, () => {
      for (let lane = 0; lane < workload.lanes.length; lane++) for (let i = 0; i < inFlight; i++) send(lane);
      return () => {
        running = false;
      };
    });
  }

  /** `rate` sends per second in all, spread round-robin over the lanes, regardless of answers. */
  async openLoop(workload: Workload, rate: number, timing: Timing): Promise<RunResult> {
    this.#onCompleted = () => undefined;
    return this.#run(workload, timing, () => {
      const start = performance.now();
      const interval = 1000 / rate;
      let next = 0;
      const tick = () => {
        const now = performance.now();
        for (let due = start + next * interval; due <= now; due = start + next * interval) {
          this.#sent++;
          workload.lanes[next % workload.lanes.length]!.send(due);
          next++;
        }
      };
      const timer = setInterval(tick, PACE_TICK_MS);
      return () => {
        clearInterval(timer);
      };
    });
  }

  async #run(workload: Workload, timing: Timing, start: () => () => void): Promise<RunResult> {
    this.#latencies = [];
    this.#sent = this.#delivered = 0;
    const began = performance.now();
    this.#windowStart = began + timing.warmupMs;
    this.#windowEnd = this.#windowStart + timing.windowMs;
    const stop = start();
    await sleep(timing.warmupMs + timing.windowMs);
    stop();
    const deadline = performance.now() + QUIESCE_TIMEOUT_MS;
    while (this.#delivered < this.#sent && this.#failure === undefined) {
      if (performance.now() > deadline) throw new Error(`${this.#sent - this.#delivered} messages undelivered ${QUIESCE_TIMEOUT_MS} ms after the load stopped`);
      await sleep(20);
    }
    if (this.#failure !== undefined) throw this.#failure;
    await workload.settle();
    const sorted = Float64Array.from(this.#latencies).sort();
    return {
      rate: (sorted.length * 1000) / timing.windowMs,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      p999: percentile(sorted, 99.9),
      delivered: sorted.length,
    };
  }
}
