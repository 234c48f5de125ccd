/**
 * The built-in example, run through the command line's own code. It simulates 60 noisy
 * images of a 32² template made from the mandrill test picture that the baboon-image
 * package ships. It reconstructs the template in a Node worker on the local GPU (or
 * SwiftShader), then prints r against the truth beside the plain stack mean's.
 * The files land in example-output/: data/ (stack.mrcs, particles.star, truth.mrc) and
 * result/ (template.mrc, template.png, poses.star, report.json).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { processContext } from '../src/cli/context.js';
import { main } from '../src/cli/main.js';
import { alignTemplates } from '../src/metrics.js';
import { readMrc } from '../src/mrc.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MANDRILL = join(ROOT, 'node_modules', 'baboon-image', 'baboon.png');
const OUT = join(ROOT, 'example-output');
const SIZE = 32;
const IMAGES = 60;
const SNR = 1;

function readImages(path: string): { data: Float32Array; count: number } {
  const file = readMrc(new Uint8Array(readFileSync(path)), path);
  return { data: file.data, count: file.header.nz };
}

async function run(args: string[]): Promise<void> {
  console.log(`$ classify2d ${args.map((arg) => arg.replace(ROOT, '')).join(' ')}`);
  const status = await main(args, context);
  if (status !== 0) process.exit(status);
}

const context = processContext();
const data = join(OUT, 'data');
const result = join(OUT, 'result');
await run(['simulate', MANDRILL, '--n', String(IMAGES), '--snr', String(SNR), '--size', String(SIZE),
  '--scale-half-range', '0', '--seed', '2026', '--out', data, '--force']);
await run(['reconstruct', join(data, 'particles.star'), '--out', result,
  '--rotations', '13', '--scales', '1', '--scale-half-range', '0', '--epochs', '6', '--force']);

const truth = readImages(join(data, 'truth.mrc')).data;
const template = readImages(join(result, 'template.mrc')).data;
const stack = readImages(join(data, 'stack.mrcs'));
const mean = new Float64Array(SIZE * SIZE);
for (let i = 0; i < stack.data.length; i++) mean[i % (SIZE * SIZE)] += stack.data[i] / stack.count;
const report = JSON.parse(readFileSync(join(result, 'report.json'), 'utf8')) as { sigma: number; epochs: number };
const simulation = JSON.parse(readFileSync(join(data, 'simulation.json'), 'utf8')) as { sigma: number };

const r = alignTemplates(truth, template, SIZE).r;
const meanR = alignTemplates(truth, mean, SIZE).r;
console.log(`r against the truth after alignment: ${r.toFixed(3)} (the plain stack mean: ${meanR.toFixed(3)})`);
console.log(`σ ${report.sigma.toFixed(4)} (truth ${simulation.sigma.toFixed(4)}), ${report.epochs} epochs`);
console.log(`files: ${OUT}`);
