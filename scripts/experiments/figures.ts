/**
 * Figures of the experiments report: image strips written with the package's own PNG
 * writer, and line charts drawn by uPlot in headless Chromium (the demo's chart library
 * and the test suite's browser), screenshot to PNG. Nothing is fetched from the network.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { chromium, type Browser } from 'playwright-core';

import { montage, writePng } from '../../src/png.js';

const require = createRequire(import.meta.url);
const UPLOT_SCRIPT = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
const UPLOT_STYLE = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');

/** Debian's Chromium, which scripts/setup.sh installs. */
const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

/** Pixels per template pixel in image strips, so that small boxes stay visible. */
const MAGNIFY = 4;

/**
 * Encodes square images of side `size` as one PNG row (or rows of `columns`), each tile
 * scaled to its own range and magnified MAGNIFY times by pixel repetition.
 */
export function imageStrip(images: ArrayLike<number>[], size: number, columns = images.length): Uint8Array {
  const tiled = montage(images, size, { columns, gap: 1 });
  const width = tiled.width * MAGNIFY;
  const height = tiled.height * MAGNIFY;
  const big = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) big[y * width + x] = tiled.image[Math.floor(y / MAGNIFY) * tiled.width + Math.floor(x / MAGNIFY)];
  }
  return writePng(big, width, height, { min: 0, max: 1 });
}

export interface Series {
  label: string;
  /** y per x; null leaves a gap. */
  values: (number | null)[];
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  x: number[];
  series: Series[];
  /** Fixed y range; by default uPlot fits the data. */
  yRange?: [number, number];
}

const COLOURS = ['#2f6fdf', '#d0542a', '#2e9e4f', '#8a4fc7', '#b5891c', '#444444', '#d63c8f'];

/** Renders charts to PNG in one headless Chromium session. */
export class ChartRenderer {
  private constructor(private readonly browser: Browser) {}

  static async open(): Promise<ChartRenderer> {
    return new ChartRenderer(await chromium.launch({ executablePath: CHROMIUM, args: FLAGS }));
  }

  async render(chart: Chart): Promise<Uint8Array> {
    const page = await this.browser.newPage({ viewport: { width: 640, height: 420 }, deviceScaleFactor: 1 });
    try {
      await page.setContent(`<!doctype html><html><head><style>${UPLOT_STYLE} body { margin: 8px; font-family: sans-serif; background: white; }</style></head><body><div id="chart"></div></body></html>`);
      await page.addScriptTag({ content: UPLOT_SCRIPT });
      const options = {
        title: chart.title,
        width: 600,
        height: 360,
        scales: { x: { time: false }, ...(chart.yRange ? { y: { range: chart.yRange } } : {}) },
        axes: [{ label: chart.xLabel }, { label: chart.yLabel, size: 80 }],
        // A static figure has no cursor, so the legend shows the labels without values.
        legend: { live: false },
        series: [{ label: chart.xLabel }, ...chart.series.map((series, i) => ({ label: series.label, stroke: COLOURS[i % COLOURS.length], width: 2, points: { show: true, size: 5 }, spanGaps: true }))],
      };
      const data = [chart.x, ...chart.series.map((series) => series.values)];
      await page.evaluate(
        ([opts, values]) => {
          const constructor = (globalThis as unknown as { uPlot: new (o: unknown, d: unknown, e: Element) => unknown }).uPlot;
          new constructor(opts, values, document.getElementById('chart')!);
        },
        [options, data] as const,
      );
      return new Uint8Array(await page.locator('#chart').screenshot());
    } finally {
      await page.close();
    }
  }

  async close(): Promise<void> {
    await this.browser.close();
  }
}
