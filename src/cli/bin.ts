#!/usr/bin/env node
/** Entry point of the `classify2d` executable; see main.ts. */
import { processContext } from './context.js';
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2), processContext());
