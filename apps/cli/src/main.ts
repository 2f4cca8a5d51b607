/**
 * `parley`: the Parley command-line client. Each command opens the profile
 * (a folder holding one device of one account), does its work over the
 * server connection, and closes. `--json` prints machine-readable output;
 * user mistakes print one line, never a stack trace.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { isClientError } from '@parley/client';

import { commands, UsageError, type Options } from './commands.js';
import { logLevelFrom, stderrLog } from './log.js';

const USAGE = `Usage: parley [--profile DIR] [--json] <command>

Commands:
  init --server URL --name NAME   create an account on a server, with this profile as its first device
  link                            join an account as a new device: paste the code its device shows
  link --request --server URL     join an account as a new device: show a code for one of its devices to approve
  whoami                          this profile's account, device and server
  send USER TEXT                  send a message (the rest of the line is the text)
  inbox [USER]                    fetch new messages; list conversations, or show one
  chat USER                       an interactive conversation: type to send, incoming shown live
  verify USER [--mark|--unmark]   show the safety number (and its QR code); --mark after comparing it
  devices list                    this account's devices
  devices link                    show a code (and QR code) that links a new device
  devices approve [CODE]          link the new device that shows CODE (read from stdin if omitted)
  devices unlink ID               remove a device from the account
  group create TITLE --members U1,U2   create a group, with you as its admin
  group list                      your groups
  group show GROUP                the roster: members, roles, devices, verification
  group add|remove GROUP USER     change who is in a group (admins)
  group promote|demote GROUP USER make a member an admin, or not (admins)
  group rename GROUP TITLE        retitle a group (admins)
  group leave GROUP               leave a group
  group send GROUP TEXT           send to every member (the rest of the line is the text)
  group read GROUP                a group's recent messages
                                  (GROUP: its title, or its id or an id prefix)

Options:
  --profile DIR   where this device's keys and messages live (default ~/.parley; env PARLEY_PROFILE)
  --json          machine-readable output (one JSON object, or JSON lines for chat)
  -h, --help      show this help

Environment:
  PARLEY_PROFILE  the default for --profile
  PARLEY_LOG      debug, info, warn or error: the client's log on stderr, as JSON lines
                  (connection states, frame kinds and sizes, error codes; never messages, keys or codes)
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      profile: { type: 'string' },
      json: { type: 'boolean' },
      server: { type: 'string' },
      name: { type: 'string' },
      mark: { type: 'boolean' },
      unmark: { type: 'boolean' },
      members: { type: 'string' },
      request: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [name, ...args] = positionals;
  if (values.help === true || name === undefined) {
    process.stdout.write(USAGE);
    return values.help === true ? 0 : 2;
  }
  const command = commands[name];
  if (command === undefined) throw new UsageError(`unknown command "${name}"`);
  const logLevel = logLevelFrom(process.env['PARLEY_LOG']);
  const options: Options = {
    profile: resolve(values.profile ?? process.env['PARLEY_PROFILE'] ?? join(homedir(), '.parley')),
    json: values.json === true,
    ...(values.server === undefined ? {} : { server: values.server }),
    ...(values.name === undefined ? {} : { name: values.name }),
    mark: values.mark === true,
    unmark: values.unmark === true,
    ...(values.members === undefined ? {} : { members: values.members }),
    request: values.request === true,
    ...(logLevel === undefined ? {} : { log: stderrLog(logLevel) }),
  };
  return command(args, options);
}

/** Exits once what was written has been flushed (a lingering socket must not keep a finished command alive). */
const exit = (code: number) => {
  process.stdout.write('', () => {
    process.stderr.write('', () => process.exit(code));
  });
};

main(process.argv.slice(2)).then(
  (code) => {
    exit(code);
  },
  (error: unknown) => {
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`parley: ${error.message}\n\n${USAGE}`);
      exit(2);
    } else if (isClientError(error)) {
      process.stderr.write(`parley: ${error.message}\n`);
      exit(1);
    } else {
      process.stderr.write(`parley: internal error: ${error instanceof Error ? error.message : String(error)}\n`);
      if (process.env['PARLEY_DEBUG'] !== undefined && error instanceof Error) process.stderr.write(`${error.stack ?? ''}\n`);
      exit(70);
    }
  },
);
