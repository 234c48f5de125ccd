/** Line charts of the run (objective, σ, FRC) through uPlot, and grey images on canvases. */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const WIDTH = 360;
const HEIGHT = 220;

/**
 * A chart of one quantity per step, with its mean over each epoch as a second series
 * drawn at the epoch's last step.
 */
export class StepChart {
  private readonly plot: uPlot;
  private readonly steps: number[] = [];
  private readonly values: number[] = [];
  private readonly epochMeans: (number | null)[] = [];
  private epoch = 0;
  private epochSum = 0;
  private epochCount = 0;

  constructor(container: HTMLElement, title: string, label: string) {
    container.replaceChildren();
    this.plot = new uPlot(
      {
        title,
        width: WIDTH,
        height: HEIGHT,
        scales: { x: { time: false } },
        axes: [{ label: 'step' }, { label, size: 70 }],
        series: [
          { label: 'step' },
          { label: 'per step', stroke: '#2f6fdf', width: 1 },
          { label: 'epoch mean', stroke: '#d0542a', width: 2, points: { show: true, size: 6 }, spanGaps: true },
        ],
      },
      [[], [], []],
      container,
    );
  }

  add(step: number, epoch: number, value: number): void {
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      this.epochSum = 0;
      this.epochCount = 0;
    }
    this.epochSum += value;
    this.epochCount += 1;
    // The epoch's running mean sits at its latest step; earlier steps of the epoch have none.
    if (this.epochCount > 1) this.epochMeans[this.epochMeans.length - 1] = null;
    this.steps.push(step);
    this.values.push(value);
    this.epochMeans.push(this.epochSum / this.epochCount);
    this.plot.setData([this.steps, this.values, this.epochMeans]);
  }
}

/** Draws the FRC curve against spatial frequency, with the 0.5 and 0.143 thresholds. */
export function drawFrc(container: HTMLElement, frequencies: ArrayLike<number>, frc: ArrayLike<number>): void {
  container.replaceChildren();
  container.hidden = false;
  const x = Array.from(frequencies);
  new uPlot(
    {
      title: 'Fourier ring correlation against the truth',
      width: WIDTH,
      height: HEIGHT,
      scales: { x: { time: false }, y: { range: [-0.2, 1.05] } },
      axes: [{ label: 'cycles per pixel' }, { label: 'FRC', size: 50 }],
      series: [
        { label: 'frequency' },
        { label: 'FRC', stroke: '#2f6fdf', width: 2 },
        { label: '0.5', stroke: '#999', dash: [4, 4] },
        { label: '0.143', stroke: '#bbb', dash: [2, 4] },
      ],
    },
    [x, Array.from(frc), x.map(() => 0.5), x.map(() => 0.143)],
    container,
  );
}

/** Draws a square grey image [size, size] scaled from its min (black) to its max (white). */
export function drawImage(canvas: HTMLCanvasElement, image: ArrayLike<number>, size: number): void {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < image.length; i++) {
    min = Math.min(min, image[i]);
    max = Math.max(max, image[i]);
  }
  const scale = max > min ? 255 / (max - min) : 0;
  const pixels = new ImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const grey = scale === 0 ? 128 : (image[i] - min) * scale;
    pixels.data.set([grey, grey, grey, 255], 4 * i);
  }
  const scratch = new OffscreenCanvas(size, size);
  scratch.getContext('2d')!.putImageData(pixels, 0, 0);
  const context = canvas.getContext('2d')!;
  context.imageSmoothingEnabled = false;
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}
