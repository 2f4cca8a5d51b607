/**
 * Named crash points, for fault-injection tests only (SECURITY-TESTS rows 19
 * and 20). At a chosen point of the send and delivery paths the process kills
 * itself with SIGKILL, as a power cut or the kernel's OOM killer would stop
 * it there: nothing is flushed, answered or rolled back on the way out, so
 * what survives is exactly what storage had made durable.
 *
 * Only `parley-server` arms a point, and only when the environment has both
 * PARLEY_FAULT_INJECTION=1 and PARLEY_FAULT_CRASH_AT=<point>[:<nth>] (read
 * once at startup; `crashPlanFromEnv`). Unarmed, `faultPoint` is one
 * comparison. This module must not know what the points mean: the callers
 * say where they are.
 */

/**
 * Where the process can be made to die:
 * - `after-receive`: a `send` or `multicast` frame was decoded, before it is checked or stored;
 * - `after-store`: a group commit that stored envelopes is durable, before any `sent` answer or push;
 * - `after-push`: an envelope was written to its recipient's socket, before the recipient's ack;
 * - `before-ack`: an `ack` frame was decoded, before its ids are queued for deletion;
 * - `mid-commit`: inside a group commit's transaction, its envelopes inserted and acks deleted, before it commits.
 */
const FAULT_POINTS = ['after-receive', 'after-store', 'after-push', 'before-ack', 'mid-commit'] as const;

export type FaultPoint = (typeof FAULT_POINTS)[number];

/** Die the `nth` time (counting from 1) the process reaches `point`. */
export interface CrashPlan {
  readonly point: FaultPoint;
  readonly nth: number;
}

/** The armed plan, counting down; per thread (the SQLite writer's thread arms its own copy). */
let armed: { readonly point: FaultPoint; remaining: number } | undefined;

/** Arms `plan` in this thread (undefined disarms). */
export function armCrash(plan: CrashPlan | undefined): void {
  armed = plan === undefined ? undefined : { point: plan.point, remaining: plan.nth };
}

/**
 * Marks that this thread reached `point`: SIGKILLs the whole process if this is
 * the armed plan's nth time. `writeOut`, if given, runs first, for a point
 * that is about bytes leaving (the envelope just pushed must be on the socket).
 */
export function faultPoint(point: FaultPoint, writeOut?: () => void): void {
  if (armed?.point !== point || --armed.remaining > 0) return;
  writeOut?.();
  process.kill(process.pid, 'SIGKILL');
}

/**
 * Parses `<point>[:<nth>]`.
 * @throws RangeError naming the value if the point is unknown or nth is not an integer from 1.
 */
function parseCrashPlan(text: string): CrashPlan {
  const [point = '', nth = '1', ...rest] = text.split(':');
  const count = Number(nth);
  if (!(FAULT_POINTS as readonly string[]).includes(point) || !Number.isSafeInteger(count) || count < 1 || rest.length > 0) {
    throw new RangeError(`PARLEY_FAULT_CRASH_AT is <point>[:<nth>] with a point among ${FAULT_POINTS.join(', ')} and nth ≥ 1, not ${JSON.stringify(text)}`);
  }
  return { point: point as FaultPoint, nth: count };
}

/**
 * The crash plan the environment asks for, and the warning to print at
 * startup whenever PARLEY_FAULT_CRASH_AT is set, armed or ignored. Two
 * variables, so that one stray setting never makes a server kill itself.
 * @throws RangeError if both are set and the plan does not parse.
 */
export function crashPlanFromEnv(env: NodeJS.ProcessEnv): { readonly plan?: CrashPlan; readonly warning?: string } {
  const text = env['PARLEY_FAULT_CRASH_AT'];
  if (text === undefined || text === '') return {};
  if (env['PARLEY_FAULT_INJECTION'] !== '1') {
    return { warning: `PARLEY_FAULT_CRASH_AT=${text} is IGNORED: crash points are for tests only, and need PARLEY_FAULT_INJECTION=1 as well` };
  }
  const plan = parseCrashPlan(text);
  return {
    plan,
    warning: `FAULT INJECTION ARMED: this process will kill itself with SIGKILL at ${plan.point}, occurrence ${plan.nth}. For tests only: never set PARLEY_FAULT_INJECTION in production`,
  };
}
