// One lint configuration for every package. Besides type-aware rules, it
// enforces the architecture: imports run apps → client → protocol → crypto and
// server → protocol (codecs) → crypto; only the crypto provider's Node
// implementation touches node:*; nothing but apps and tests imports the server.
import { builtinModules } from 'node:module';

import tseslint from 'typescript-eslint';

const pure = 'crypto and protocol stay pure: reach the platform only through a CryptoProvider.';
// Bare builtins ('crypto', 'fs/promises') are exact paths: as patterns, 'crypto' would also match '@parley/crypto'.
const nodeBuiltinPaths = builtinModules.filter((name) => !name.startsWith('_')).map((name) => ({ name, message: pure }));
const noNode = { group: ['node:*'], message: pure };
const clientPure = 'the client core runs in browsers too: Node goes in packages/client/src/node/, behind a Platform.';
const layer = (forbidden, why) => ({
  group: forbidden.flatMap((name) => [`@parley/${name}`, `@parley/${name}/*`]),
  message: why,
});
const restrict = (...patterns) => ['error', { patterns }];
const restrictWithoutNode = (...patterns) => ['error', { paths: nodeBuiltinPaths, patterns: [noNode, ...patterns] }];
const tests = ['**/*.test.ts', 'testing/**', 'bench/**'];

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/coverage/**'] },
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/require-await': 'off', // provider methods are async by contract
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-non-null-assertion': 'off', // tests index fixed-size arrays
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
      eqeqeq: 'error',
      'no-console': 'error',
    },
  },
  {
    files: ['eslint.config.js', 'packages/*/bin/*.js', 'apps/*/bin/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['packages/crypto/src/**/*.ts'],
    ignores: ['packages/crypto/src/node/**', ...tests],
    rules: {
      'no-restricted-imports': restrictWithoutNode(
        layer(['protocol', 'client', 'server'], 'crypto is the bottom layer: it imports no other Parley package.'),
      ),
    },
  },
  {
    files: ['packages/crypto/src/web/**/*.ts'],
    rules: {
      'no-restricted-imports': restrictWithoutNode({ group: ['**/node/**'], message: 'the browser provider may not load the Node one.' }),
    },
  },
  {
    files: ['packages/protocol/src/**/*.ts'],
    ignores: tests,
    rules: {
      'no-restricted-imports': restrictWithoutNode(
        layer(['client', 'server'], 'protocol imports only crypto.'),
        { group: ['@parley/crypto/node', '@parley/crypto/web'], message: 'protocol takes a CryptoProvider; it never picks one.' },
      ),
    },
  },
  {
    files: ['packages/client/src/**/*.ts'],
    ignores: ['packages/client/src/node/**', 'packages/client/src/web/**', ...tests],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltinPaths.map((path) => ({ ...path, message: clientPure })),
          patterns: [
            { group: ['node:*'], message: clientPure },
            layer(['server'], 'only apps and tests import the server.'),
            { group: ['@parley/crypto/node', '@parley/crypto/web', 'ws', 'better-sqlite3'], message: clientPure },
          ],
        },
      ],
    },
  },
  {
    files: ['packages/client/src/web/**/*.ts'],
    ignores: tests,
    rules: {
      'no-restricted-imports': restrictWithoutNode(layer(['server'], 'only apps and tests import the server.'), {
        group: ['@parley/crypto/node', '**/node/**', 'ws', 'better-sqlite3'],
        message: 'the browser platform may not load the Node one.',
      }),
    },
  },
  {
    files: ['packages/client/src/node/**/*.ts'],
    ignores: tests,
    rules: { 'no-restricted-imports': restrict(layer(['server'], 'only apps and tests import the server.')) },
  },
  {
    files: ['apps/**/*.ts'],
    ignores: tests,
    rules: {
      'no-restricted-imports': restrict(
        layer(['server', 'protocol', 'crypto'], 'apps build on the client SDK; the protocol and crypto are its business.'),
      ),
    },
  },
  {
    files: ['apps/web/src/**/*.ts', 'apps/web/src/**/*.tsx'],
    ignores: tests,
    rules: {
      'no-restricted-imports': restrictWithoutNode(
        layer(['server', 'protocol', 'crypto'], 'apps build on the client SDK; the protocol and crypto are its business.'),
        { group: ['@parley/client/node', 'ws', 'better-sqlite3'], message: 'the web client runs in browsers: its platform is @parley/client/web.' },
      ),
    },
  },
  {
    files: ['packages/server/src/**/*.ts'],
    ignores: tests,
    rules: { 'no-restricted-imports': restrict(layer(['client'], 'the server never imports the client.')) },
  },
  {
    files: ['**/*.test.ts', 'testing/**', 'bench/**'],
    rules: { 'no-console': 'off' },
  },
);
