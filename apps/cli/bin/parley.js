#!/usr/bin/env node
// Parley's packages ship TypeScript sources; tsx compiles them as they load.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
