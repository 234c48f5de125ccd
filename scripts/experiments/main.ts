/**
 * `npm run experiments`: runs the report's experiments on this machine's GPU (or
 * SwiftShader) and writes docs/experiments.md with its figures in docs/experiments/.
 * Flags: --large for a real GPU (64² boxes, 36 rotations, 12 epochs), --tiny for a check
 * of the generator in seconds, --out DIR for another folder.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { describeAdapter, requestNodeGpu } from '../../src/node-gpu.js';
import { writeReport } from './report.js';
import { DEFAULT_CONFIG, LARGE_CONFIG, runExperiments, TINY_CONFIG } from './run.js';

const { values } = parseArgs({
  options: { large: { type: 'boolean' }, tiny: { type: 'boolean' }, out: { type: 'string' } },
  strict: true,
});
if (values.large && values.tiny) throw new Error('experiments: pass --large or --tiny, not both');
let config = DEFAULT_CONFIG;
if (values.large) config = LARGE_CONFIG;
if (values.tiny) config = TINY_CONFIG;
const folder = values.out ?? fileURLToPath(new URL('../../docs', import.meta.url));

const gpu = await requestNodeGpu();
const info = describeAdapter(gpu.adapter);
const adapter = `${info.description || info.device} (${info.vendor}, ${info.architecture})`;
console.error(`adapter: ${adapter}; configuration ${config.name}`);
try {
  const results = await runExperiments(gpu.device, config, adapter, (message) => console.error(message));
  const flag = config === DEFAULT_CONFIG ? '' : ` -- --${config.name}`;
  const written = await writeReport(results, folder, `npm run experiments${flag}`);
  console.error(`wrote ${written.length} files: ${written.join(', ')}`);
} finally {
  gpu.device.destroy();
}
