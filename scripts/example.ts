/**
 * The built-in example. It simulates 60 noisy images of a 32² template at random poses
 * and reconstructs the template in a Node worker on the local GPU (or SwiftShader). It
 * prints r against the truth beside the plain stack mean's, and σ beside the truth.
 */
import { resample } from '../gpu/host.js';
import { alignTemplates } from '../src/metrics.js';
import { createNodeReconstructor } from '../src/node-client.js';
import { figureTemplate, simulateStack } from '../src/synthetic.js';

const SIZE = 32;
const IMAGES = 60;
const SNR = 1;

async function main(): Promise<void> {
  const truth = figureTemplate(SIZE);
  const stack = simulateStack(truth, SIZE, { count: IMAGES, snr: SNR, seed: 2026, scaleHalfRange: 0 }, resample);
  const worker = await createNodeReconstructor();
  try {
    const adapter = await worker.adapter();
    console.log(`adapter: ${adapter.description || adapter.device} (${adapter.vendor}, ${adapter.architecture})`);
    console.log(`${IMAGES} images of ${SIZE}² at SNR ${SNR}, noise σ ${stack.sigma.toFixed(4)}`);
    const result = await worker.reconstruct(
      { images: stack.images, size: SIZE },
      { rotations: 13, scales: 1, scaleHalfRange: 0, maxEpochs: 4 },
      {
        onProgress: (progress) => {
          const line = `epoch ${progress.epoch} step ${progress.step}/${progress.totalSteps}  σ ${progress.sigma.toFixed(4)}  ` +
            `${progress.elapsedSeconds.toFixed(0)} s, about ${progress.remainingSeconds.toFixed(0)} s left`;
          process.stderr.write(`\r${line.padEnd(72)}`);
        },
      },
    );
    process.stderr.write('\n');
    const mean = new Float64Array(SIZE * SIZE);
    for (let i = 0; i < stack.images.length; i++) mean[i % (SIZE * SIZE)] += stack.images[i] / IMAGES;
    const r = alignTemplates(truth, result.template, SIZE).r;
    const meanR = alignTemplates(truth, mean, SIZE).r;
    console.log(`r against the truth after alignment: ${r.toFixed(3)} (the plain stack mean: ${meanR.toFixed(3)})`);
    console.log(`σ ${result.sigma.toFixed(4)} (truth ${stack.sigma.toFixed(4)}), ${result.epochs} epochs`);
  } finally {
    await worker.terminate();
  }
}

await main();
