/**
 * `npm run demo` as a newcomer runs it: it must finish, show every device
 * reading the conversation and the group, and show the server holding
 * ciphertext only (none of the words of the messages appear in what it
 * stored) and no group membership.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const demo = fileURLToPath(new URL('demo.ts', import.meta.url));

describe('npm run demo', () => {
  it('shows what the server stored beside what each device read, and the server never holds a word of it', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', demo], { timeout: 120_000 });
    const plain = stdout.replace(/\x1b\[[0-9;]*m/g, ''); // terminal colours
    const section = (n: number) => plain.slice(plain.indexOf(`${n}. `), plain.indexOf(`${n + 1}. `));

    const stored = section(4);
    expect(stored.match(/bytes\)/g)?.length).toBeGreaterThanOrEqual(4);
    for (const word of ['Lunch', 'noon', 'book']) expect(stored).not.toContain(word);

    const read = section(5);
    expect(read.match(/alice: Lunch at noon\? The usual place\./g)).toHaveLength(2); // both of Bob's devices
    expect(read).toContain('me: Lunch at noon? The usual place.'); // Alice's laptop, from the transcript
    expect(section(6).match(/bob: Noon works\. Bring the book!/g)).toHaveLength(2);
    const group = section(7);
    expect(group).not.toMatch(/Tables:.*group/i);
    const stored7 = group.slice(group.indexOf('one copy per device'), group.indexOf("bob's phone:"));
    expect(stored7.match(/ 7 {4}/g)?.length).toBeGreaterThanOrEqual(4); // the group message, once per device
    expect(stored7).not.toContain('Friday');
    expect(group.match(/alice: Friday lunch is on me\./g)).toHaveLength(3); // bob's two devices and carol's
    expect(group).toContain('me: Friday lunch is on me.'); // alice's laptop
    expect(plain).toMatch(/\d{5}( \d{5}){11}/); // the safety number
  });
});
