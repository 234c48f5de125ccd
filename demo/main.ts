/**
 * The demo page: picks the data, validates the settings, runs the reconstruction in a
 * module worker on navigator.gpu, and draws θ, the objective and σ while it runs.
 * `document.body.dataset.state` is loading, ready, running, paused, done, cancelled,
 * failed or unsupported, for people and for the end-to-end test.
 */
import { createBrowserReconstructor, type Reconstructor } from '../src/client.js';
import { scoreTemplate } from '../src/metrics.js';
import { resolveOptions, type ReconstructionOptions } from '../src/options.js';
import type { Progress, ReconstructionResult } from '../src/reconstruct.js';
import { resultFiles, supportedClasses } from '../src/result-files.js';
import { optimisers } from '../plugins/optimisers.js';
import { reparameterisations } from '../plugins/reparameterisations.js';
import { drawFrc, drawImage, StepChart } from './charts.js';
import { datasetFromFiles, exampleDataset, type Dataset, type SimulationSettings } from './data.js';

/** Settings filled in at load: the package's defaults, with a pose grid small enough for a laptop. */
const INITIAL_SETTINGS: ReconstructionOptions = {
  rotations: 13,
  scales: 1,
  scaleHalfRange: 0,
  maxEpochs: 6,
};

type State = 'loading' | 'ready' | 'running' | 'paused' | 'done' | 'cancelled' | 'failed' | 'unsupported';

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the page has no element #${id}`);
  return found as T;
}

const form = element<HTMLFormElement>('settings');
const startButton = element<HTMLButtonElement>('start');
const pauseButton = element<HTMLButtonElement>('pause');
const cancelButton = element<HTMLButtonElement>('cancel');
const statusLine = element<HTMLParagraphElement>('status');
const progressBar = element<HTMLProgressElement>('progress');
const messageBox = element<HTMLDivElement>('message');
const fileInput = element<HTMLInputElement>('files');
const dropZone = element<HTMLDivElement>('drop');

let droppedFiles: File[] = [];
let worker: Reconstructor | undefined;
let controller: AbortController | undefined;
let paused = false;

function setState(state: State): void {
  document.body.dataset.state = state;
  const running = state === 'running' || state === 'paused';
  startButton.disabled = running || state === 'loading' || state === 'unsupported';
  pauseButton.disabled = !running;
  cancelButton.disabled = !running;
  pauseButton.textContent = state === 'paused' ? 'Resume' : 'Pause';
}

function showMessage(text: string): void {
  messageBox.textContent = text;
  messageBox.hidden = false;
}

function clearMessage(): void {
  messageBox.hidden = true;
  messageBox.textContent = '';
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.name === 'Error' ? error.message : `${error.name}: ${error.message}`;
}

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  return seconds < 90 ? `${Math.round(seconds)} s` : `${Math.floor(seconds / 60)} min ${String(Math.round(seconds % 60)).padStart(2, '0')} s`;
}

// ---------------------------------------------------------------------------
// Settings

function fillSettings(): void {
  const optimiserSelect = form.elements.namedItem('optimiser') as HTMLSelectElement;
  const reparameterisationSelect = form.elements.namedItem('reparameterisation') as HTMLSelectElement;
  for (const name of optimisers.names()) optimiserSelect.add(new Option(name, name));
  for (const name of reparameterisations.names()) reparameterisationSelect.add(new Option(name, name));
  // The defaults come from the same resolution the run uses, for a 32² box of 60 images.
  const defaults = resolveOptions(INITIAL_SETTINGS, 32, 60);
  for (const control of Array.from(form.elements) as HTMLInputElement[]) {
    if (!control.name || control.name === 'shiftRange' || control.name === 'shiftSd') continue;
    const value = defaults[control.name as keyof typeof defaults];
    if (control.type === 'checkbox') control.checked = value === true;
    else control.value = String(value);
  }
}

/** Reads the form into options; a blank number field is left to the default. */
function readSettings(): ReconstructionOptions {
  const options: Record<string, unknown> = {};
  for (const control of Array.from(form.elements) as HTMLInputElement[]) {
    if (!control.name) continue;
    if (control.type === 'checkbox') options[control.name] = control.checked;
    else if (control.type === 'number') {
      if (control.value.trim() !== '') options[control.name] = Number(control.value);
    } else options[control.name] = control.value;
  }
  return options as ReconstructionOptions;
}

function simulationSettings(): SimulationSettings {
  const number = (id: string) => Number(element<HTMLInputElement>(id).value);
  return { images: number('images'), snr: number('snr'), size: number('size'), seed: number('simulation-seed') };
}

// ---------------------------------------------------------------------------
// Files

function setFiles(files: File[]): void {
  droppedFiles = files;
  element<HTMLDivElement>('file-list').textContent = files.map((file) => `${file.name} (${(file.size / 1024).toFixed(0)} kB)`).join(', ');
  (document.querySelector('input[name=source][value=files]') as HTMLInputElement).checked = true;
}

fileInput.addEventListener('change', () => setFiles(Array.from(fileInput.files ?? [])));
dropZone.addEventListener('dragover', (event) => {
  event.preventDefault();
  dropZone.classList.add('over');
});
dropZone.addEventListener('dragleave', () => dropZone.classList.remove('over'));
dropZone.addEventListener('drop', (event) => {
  event.preventDefault();
  dropZone.classList.remove('over');
  setFiles(Array.from(event.dataTransfer?.files ?? []));
});

async function loadDataset(): Promise<Dataset> {
  const source = (document.querySelector('input[name=source]:checked') as HTMLInputElement).value;
  if (source === 'example') return exampleDataset(simulationSettings(), element<HTMLSelectElement>('views').value === '2' ? 2 : 1);
  return datasetFromFiles(droppedFiles, simulationSettings(), element<HTMLInputElement>('drop-bad').checked);
}

// ---------------------------------------------------------------------------
// The run

interface RunView {
  dataset: Dataset;
  objective: StepChart;
  sigma: StepChart;
}

function resetResults(): void {
  for (const id of ['truth-figure', 'aligned-figure', 'frc-chart', 'score', 'downloads', 'gallery-section']) element(id).hidden = true;
}

/** Draws class templates [K, N, N] as a gallery, each captioned. */
function drawGallery(templates: Float32Array, size: number, captions: string[]): void {
  const pixels = size * size;
  const figures = captions.map((caption, k) => {
    const figure = document.createElement('figure');
    const canvas = document.createElement('canvas');
    canvas.width = 128;
    canvas.height = 128;
    drawImage(canvas, templates.subarray(k * pixels, (k + 1) * pixels), size);
    const label = document.createElement('figcaption');
    label.textContent = caption;
    figure.append(canvas, label);
    return figure;
  });
  element('gallery').replaceChildren(...figures);
  element('gallery-section').hidden = false;
}

/** Draws the classes that hold images, largest first, captioned with their sizes and weights. */
function showClasses(dataset: Dataset, result: ReconstructionResult): void {
  const supported = result.classes.slice(0, supportedClasses(result));
  if (result.classes.length < 2 || supported.length === 0) return;
  const captions = supported.map((summary, position) => {
    const flags = [summary.duplicateOf !== null ? `copy of class ${summary.duplicateOf + 1}` : '', summary.empty ? 'nearly empty' : '']
      .filter(Boolean)
      .join(', ');
    return `class ${position + 1}: ${summary.images} images, π ${summary.weight.toFixed(2)}${flags ? ` (${flags})` : ''}`;
  });
  drawGallery(result.templates, dataset.size, captions);
}

function onProgress(view: RunView, progress: Progress): void {
  progressBar.value = progress.step / progress.totalSteps;
  const phase = progress.phase === 'full' ? '' : `${progress.phase}: `;
  statusLine.textContent =
    `${phase}epoch ${progress.epoch}, step ${progress.step} of ${progress.totalSteps}, σ ${progress.sigma.toPrecision(4)}; ` +
    `${formatSeconds(progress.elapsedSeconds)} elapsed, about ${formatSeconds(progress.remainingSeconds)} left` +
    (paused ? ' (paused)' : '');
  if (progress.phase !== 'full') return;
  view.objective.add(progress.step, progress.epoch, progress.objective);
  view.sigma.add(progress.step, progress.epoch, progress.sigma);
  if (!progress.template) return;
  const size = view.dataset.size;
  drawImage(element('template'), progress.template.subarray(0, size * size), size);
  const classes = progress.template.length / (size * size);
  if (classes > 1) drawGallery(progress.template, size, Array.from({ length: classes }, (_, k) => `class ${k + 1} (running)`));
}

/** Download links and the result file each one offers. */
const DOWNLOADS: [id: string, file: string, type: string][] = [
  ['download-mrc', 'template.mrc', 'application/octet-stream'],
  ['download-png', 'template.png', 'image/png'],
  ['download-classes', 'classes.mrcs', 'application/octet-stream'],
  ['download-star', 'poses.star', 'text/plain'],
];

function offerDownloads(dataset: Dataset, result: ReconstructionResult): void {
  const files = resultFiles(result, { pixelSize: dataset.pixelSize, imageNames: dataset.imageNames });
  for (const [id, file, type] of DOWNLOADS) {
    const anchor = element<HTMLAnchorElement>(id);
    if (anchor.href.startsWith('blob:')) URL.revokeObjectURL(anchor.href);
    const data = files.get(file);
    anchor.hidden = data === undefined;
    if (data !== undefined) anchor.href = URL.createObjectURL(new Blob([data as BlobPart], { type }));
  }
  element('downloads').hidden = false;
}

function showScore(dataset: Dataset, result: ReconstructionResult): void {
  if (!dataset.truth) return;
  const score = scoreTemplate(dataset.truth, result.template, dataset.size);
  drawImage(element('aligned'), score.aligned, dataset.size);
  element('aligned-figure').hidden = false;
  element('score-r').textContent = score.r.toFixed(3);
  const crossing = (value: number | null) => (value === null ? 'none (above the threshold at every ring)' : `${value.toFixed(3)} cycles per pixel`);
  element('score-frc05').textContent = crossing(score.crossing05);
  element('score-frc0143').textContent = crossing(score.crossing0143);
  element('score').hidden = false;
  drawFrc(element('frc-chart'), score.frc.frequencies, score.frc.frc);
}

/** Loads the data and validates the settings, or shows why not and returns undefined. */
async function prepare(): Promise<{ dataset: Dataset; options: ReconstructionOptions } | undefined> {
  try {
    const dataset = await loadDataset();
    const options = readSettings();
    // Validated here too, so a mistake is reported before the worker gets the stack.
    resolveOptions(options, dataset.size, dataset.count);
    return { dataset, options };
  } catch (error) {
    showMessage(describeError(error));
    return undefined;
  }
}

async function start(): Promise<void> {
  if (!worker) return;
  clearMessage();
  resetResults();
  const prepared = await prepare();
  if (!prepared) return;
  const { dataset, options } = prepared;

  const drawEvery = Math.max(1, Math.round(Number(element<HTMLInputElement>('draw-every').value) || 1));
  const view: RunView = {
    dataset,
    objective: new StepChart(element('objective-chart'), 'Objective ℓ (minibatch estimate)', 'ℓ'),
    sigma: new StepChart(element('sigma-chart'), 'Noise σ', 'σ'),
  };
  if (dataset.truth) {
    drawImage(element('truth'), dataset.truth, dataset.size);
    element('truth-figure').hidden = false;
  }
  if (dataset.notes.length > 0) showMessage(dataset.notes.join('\n'));

  controller = new AbortController();
  paused = false;
  setState('running');
  progressBar.value = 0;
  statusLine.textContent = `${dataset.description}: initialising…`;
  const started = performance.now();

  try {
    const result = await worker.reconstruct(
      { images: dataset.images, size: dataset.size },
      { ...options, snapshotEvery: drawEvery },
      { signal: controller.signal, onProgress: (progress) => onProgress(view, progress) },
    );
    drawImage(element('template'), result.template, dataset.size);
    const seconds = (performance.now() - started) / 1000;
    let outcome = 'Reached the epoch limit';
    if (result.converged) outcome = 'Converged';
    if (result.cancelled) outcome = 'Cancelled';
    statusLine.textContent = `${outcome} after ${result.epochs} epochs in ${formatSeconds(seconds)}; σ ${result.sigma.toPrecision(4)}. ${dataset.description}.`;
    progressBar.value = result.cancelled ? progressBar.value : 1;
    offerDownloads(dataset, result);
    showClasses(dataset, result);
    showScore(dataset, result);
    setState(result.cancelled ? 'cancelled' : 'done');
  } catch (error) {
    // θ, the charts and the status line of the last step stay on screen.
    showMessage(`The run failed: ${describeError(error)}\nThe last θ drawn and the charts are kept.`);
    setState('failed');
  } finally {
    controller = undefined;
  }
}

startButton.addEventListener('click', () => void start());
cancelButton.addEventListener('click', () => controller?.abort());
pauseButton.addEventListener('click', () => {
  if (!worker) return;
  paused = !paused;
  setState(paused ? 'paused' : 'running');
  void (paused ? worker.pause() : worker.resume());
});

// ---------------------------------------------------------------------------
// Start-up

async function initialise(): Promise<void> {
  fillSettings();
  setState('loading');
  if (!('gpu' in navigator) || !navigator.gpu) {
    element('adapter').textContent = 'No WebGPU.';
    showMessage(
      'This browser does not offer WebGPU (navigator.gpu is missing), so the reconstruction cannot run here. ' +
        'Use a recent Chrome, Edge or Safari, or Firefox with WebGPU enabled.',
    );
    setState('unsupported');
    return;
  }
  try {
    worker = createBrowserReconstructor(new Worker(new URL('../src/worker-browser.ts', import.meta.url), { type: 'module' }));
    const adapter = await worker.adapter();
    // Browsers may leave the description and device empty to limit fingerprinting.
    const name = adapter.description || adapter.device || [adapter.vendor, adapter.architecture].filter(Boolean).join(' ') || 'an unnamed adapter';
    element('adapter').textContent = `GPU: ${name}`;
    setState('ready');
  } catch (error) {
    element('adapter').textContent = 'No WebGPU adapter.';
    showMessage(`WebGPU could not start: ${describeError(error)}`);
    setState('unsupported');
  }
}

void initialise();
