#!/usr/bin/env node
// The cairn CLI (client/src/cli/main.ts), run by launch.js.
import { launch } from './launch.js';

await launch('cli/main.ts');
