#!/usr/bin/env node
// The agent (client/src/main.ts), run by launch.js.
import { launch } from './launch.js';

await launch('main.ts');
