/**
 * The built-in example. It simulates a small stack from a synthetic template at known
 * poses and evaluates the pose posterior with the WebGPU engine. It prints each image's
 * true pose beside the most probable grid pose, and the engine's log Ĩ beside the twin's.
 */
import { PoseEngine } from '../gpu/engine.js';
import { evaluateHost, resample } from '../gpu/host.js';
import { requestNodeGpu } from '../src/node-gpu.js';
import { loadNumerics, type PoseGridSpec } from '../src/numerics.js';
import { gridFields } from '../src/pose-grid.js';
import { blobTemplate, normalDeviates, seededRandom } from '../src/synthetic.js';

const SIZE = 32;
const IMAGES = 8;
const NOISE = 0.5;
const spec: PoseGridSpec = {
  rotation: { count: 24 },
  shiftX: { count: 5, min: -2, max: 2 },
  shiftY: { count: 5, min: -2, max: 2 },
  scale: { count: 3, min: 0.95, max: 1.05 },
  shiftSd: 0.05 * SIZE,
  scaleHalfRange: 0.05,
};

async function main(): Promise<void> {
  const started = performance.now();
  const random = seededRandom(2026);
  const normal = normalDeviates(random);
  const numerics = await loadNumerics();
  const gpu = await requestNodeGpu();
  console.log(`adapter: ${gpu.info.description || gpu.info.device} (${gpu.info.vendor}, ${gpu.info.architecture})`);

  const template = blobTemplate(SIZE, random);
  const pixels = SIZE * SIZE;
  const fields = gridFields(numerics, spec, new Float64Array(IMAGES));
  const images = new Float32Array(IMAGES * pixels);
  const model = new Float64Array(pixels);
  const truth: number[][] = [];
  for (let b = 0; b < IMAGES; b++) {
    const pose = [Math.floor(random() * 24), Math.floor(random() * 5), Math.floor(random() * 5), Math.floor(random() * 3)];
    truth.push(pose);
    const psi = fields.rotations[pose[0]];
    resample(
      SIZE,
      template,
      { cos: Math.cos(psi), sin: Math.sin(psi), a: fields.shiftsX[pose[1]], b: fields.shiftsY[pose[2]], scale: fields.scales[pose[3]] },
      model,
    );
    for (let q = 0; q < pixels; q++) images[b * pixels + q] = model[q] + NOISE * normal();
  }

  const shape = { size: SIZE, classes: 1, rotations: 24, shiftsX: 5, shiftsY: 5, scales: 3, batch: IMAGES };
  const input = { images, templates: template, logClassWeights: [0], ...fields, sigma: NOISE };
  const engine = await PoseEngine.create(gpu.device, shape);
  const output = await engine.evaluate(input, { responsibilities: true });
  engine.destroy();
  const host = evaluateHost(shape, input, { gradient: false });

  const poses = 24 * 5 * 5 * 3;
  const describe = (index: number) => {
    const m = index % 3;
    const r = Math.floor(index / 3) % 5;
    const q = Math.floor(index / 15) % 5;
    const p = Math.floor(index / 75);
    return `ψ ${((fields.rotations[p] * 180) / Math.PI).toFixed(0).padStart(3)}°  a ${fields.shiftsX[q].toFixed(0).padStart(2)}  b ${fields.shiftsY[r].toFixed(0).padStart(2)}  c ${fields.scales[m].toFixed(2)}`;
  };
  let recovered = 0;
  console.log(`${IMAGES} images of ${SIZE}², noise σ ${NOISE}, ${poses} poses each`);
  for (let b = 0; b < IMAGES; b++) {
    const gamma = output.responsibilities!.subarray(b * poses, (b + 1) * poses);
    let best = 0;
    for (let i = 1; i < poses; i++) if (gamma[i] > gamma[best]) best = i;
    const trueIndex = ((truth[b][0] * 5 + truth[b][1]) * 5 + truth[b][2]) * 3 + truth[b][3];
    if (best === trueIndex) recovered++;
    console.log(
      `image ${b}: true ${describe(trueIndex)} | most probable ${describe(best)} (γ ${gamma[best].toFixed(3)})` +
        `  log Ĩ ${output.logIntegral[b].toFixed(3)} (float64 twin ${host.logIntegral[b].toFixed(3)})`,
    );
  }
  console.log(`true pose most probable in ${recovered} of ${IMAGES} images; ${((performance.now() - started) / 1000).toFixed(1)} s`);
  gpu.device.destroy();
}

await main();
