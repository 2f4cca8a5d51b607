import { describe, expect, it } from 'vitest';

import { ClientError } from './errors.js';
import { errorCode, Logger, tally, type LogLevel, type LogValue } from './log.js';

describe('the debug log', () => {
  it('takes declared events with scalar fields only: bytes, objects and unknown events do not compile', () => {
    const lines: [LogLevel, string, Readonly<Record<string, LogValue>>][] = [];
    const log = new Logger((level, event, fields) => lines.push([level, event, fields]));
    log.debug('frame.sent', { kind: 'auth', bytes: 57 });
    // @ts-expect-error a key cannot be a field
    log.debug('frame.sent', { kind: 'auth', bytes: new Uint8Array(32) });
    // @ts-expect-error nor can an object
    log.info('warning', { code: new ClientError('NETWORK', 'down') });
    // @ts-expect-error nor an undeclared field
    log.info('mailbox.drained', { count: 1, token: 'x' });
    // @ts-expect-error nor an undeclared event
    log.warn('message.text', { body: 'hello' });
    expect(lines[0]).toEqual(['debug', 'frame.sent', { kind: 'auth', bytes: 57 }]);
  });

  it('is silent without a sink, and a sink that throws does not break the caller', () => {
    expect(() => { new Logger().info('mailbox.drained', { count: 0 }); }).not.toThrow();
    const broken = new Logger(() => {
      throw new Error('disk full');
    });
    expect(() => { broken.warn('warning', { code: 'NETWORK' }); }).not.toThrow();
  });

  it('names an error by its code or class, never by its message', () => {
    expect(errorCode(new ClientError('SERVER', 'the server refused POST /v1/keys: secret-ish detail'))).toBe('SERVER');
    expect(errorCode(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }))).toBe('ECONNREFUSED');
    expect(errorCode(Object.assign(new Error('x'), { code: 'a code with spaces and text' }))).toBe('Error');
    expect(errorCode(new TypeError('bad token abc'))).toBe('TypeError');
    expect(errorCode('a thrown string')).toBe('unknown');
  });

  it('tallies frame kinds in order of first appearance', () => {
    expect(tally(['envelope', 'envelope', 'drained', 'envelope'])).toBe('envelope:3,drained:1');
    expect(tally([])).toBe('');
  });
});
