import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium, type Browser, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The built demo page in headless Chromium (Debian's package) with WebGPU, which runs on
 * SwiftShader where the machine has no GPU. The page is served from 127.0.0.1 only.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  // Chromium on Linux needs Vulkan enabled for WebGPU; ANGLE's SwiftShader backs WebGL.
  '--enable-features=Vulkan',
  '--use-angle=swiftshader',
];
/** Where the screenshot of the finished run is saved. */
const SCREENSHOT = join(ROOT, 'test-output', 'demo.png');
/** Lowest r the small run below must reach; it reached 0.944 on SwiftShader (Chromium 156). */
const MIN_R = 0.85;

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

let folder: string;
let server: Server;
let origin: string;
let browser: Browser;

function serve(root: string): Promise<Server> {
  return new Promise((resolve) => {
    const handler = createServer((request, response) => {
      const path = normalize(join(root, decodeURIComponent((request.url ?? '/').split('?')[0])));
      const file = path.endsWith('/') ? join(path, 'index.html') : path;
      try {
        if (!file.startsWith(root)) throw new Error('outside the served folder');
        const body = readFileSync(file);
        response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
        response.end(body);
      } catch {
        response.writeHead(404);
        response.end();
      }
    });
    handler.listen(0, '127.0.0.1', () => resolve(handler));
  });
}

/** Opens the page, recording every request and page error. */
async function openPage(init?: () => void): Promise<{ page: Page; requests: string[]; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('pageerror', (error) => errors.push(error.message));
  if (init) await page.addInitScript(init);
  await page.goto(`${origin}/index.html`);
  await page.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: 60_000 });
  return { page, requests, errors };
}

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), 'classify2d-demo-'));
  await build({
    configFile: join(ROOT, 'demo', 'vite.config.ts'),
    logLevel: 'warn',
    build: { outDir: folder, emptyOutDir: true },
  });
  server = await serve(folder);
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  if (folder) rmSync(folder, { recursive: true, force: true });
});

describe('demo page in Chromium', () => {
  it('reconstructs the example', async () => {
    const { page, requests, errors } = await openPage();
    expect(await page.evaluate(() => document.body.dataset.state), await page.textContent('#message') ?? '').toBe('ready');
    expect(await page.textContent('#adapter')).toMatch(/^GPU: /);

    await page.fill('#images', '30');
    await page.fill('#snr', '4');
    await page.fill('#size', '20');
    await page.fill('input[name=rotations]', '8');
    await page.fill('input[name=maxEpochs]', '3');
    await page.fill('#draw-every', '2');
    await page.click('#start');
    await page.waitForFunction(() => ['done', 'failed', 'cancelled'].includes(document.body.dataset.state ?? ''), null, { timeout: 240_000 });
    const state = await page.evaluate(() => document.body.dataset.state);
    expect(state, await page.textContent('#message') ?? '').toBe('done');

    const r = Number(await page.textContent('#score-r'));
    expect(r, 'r against the truth').toBeGreaterThan(MIN_R);
    expect(await page.textContent('#status')).toContain('after 3 epochs');
    const star = await page.getAttribute('#download-star', 'href');
    expect(star).toMatch(/^blob:/);
    const starText = await page.evaluate(async (href) => (await fetch(href!)).text(), star);
    expect(starText).toContain('000030@simulated.mrcs');
    // The charts have drawn: uPlot adds one canvas per chart.
    expect(await page.locator('#objective-chart canvas').count()).toBe(1);
    expect(await page.locator('#frc-chart canvas').count()).toBe(1);

    mkdirSync(join(ROOT, 'test-output'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    const outside = requests.filter((url) => !url.startsWith(origin) && !url.startsWith('blob:') && !url.startsWith('data:'));
    expect(outside, 'requests outside the served page').toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows two views as classes', async () => {
    const { page, errors } = await openPage();
    await page.selectOption('#views', '2');
    await page.fill('#images', '30');
    await page.fill('#snr', '4');
    await page.fill('#size', '16');
    await page.fill('input[name=rotations]', '8');
    await page.fill('input[name=maxEpochs]', '4');
    await page.fill('input[name=classes]', '2');
    await page.click('#start');
    await page.waitForFunction(() => ['done', 'failed', 'cancelled'].includes(document.body.dataset.state ?? ''), null, { timeout: 240_000 });
    expect(await page.evaluate(() => document.body.dataset.state), await page.textContent('#message') ?? '').toBe('done');
    const captions = await page.locator('#gallery figcaption').allTextContents();
    expect(captions, captions.join(' | ')).toHaveLength(2);
    const sizes = captions.map((caption) => Number(/: (\d+) images/.exec(caption)?.[1]));
    expect(sizes.sort((a, b) => a - b)).toEqual([15, 15]);
    expect(await page.isVisible('#download-classes')).toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('pauses and cancels a run', async () => {
    const { page } = await openPage();
    await page.fill('#images', '20');
    await page.fill('#size', '16');
    await page.fill('input[name=rotations]', '8');
    await page.fill('input[name=maxEpochs]', '50');
    await page.fill('input[name=batchSize]', '2');
    await page.click('#start');
    await page.waitForFunction(() => /step \d+ of/.test(document.getElementById('status')!.textContent ?? ''), null, { timeout: 120_000 });
    await page.click('#pause');
    expect(await page.evaluate(() => document.body.dataset.state)).toBe('paused');
    expect(await page.textContent('#pause')).toBe('Resume');
    await page.click('#cancel');
    await page.waitForFunction(() => document.body.dataset.state === 'cancelled', null, { timeout: 60_000 });
    expect(await page.textContent('#status')).toContain('Cancelled');
    expect(await page.isVisible('#download-mrc')).toBe(true);
    await page.close();
  });

  it('names a bad file and keeps the page usable', async () => {
    const { page } = await openPage();
    const broken = join(folder, 'broken.mrcs');
    writeFileSync(broken, new Uint8Array(100));
    await page.setInputFiles('#files', broken);
    await page.click('#start');
    await page.waitForSelector('#message:not([hidden])');
    const message = await page.textContent('#message');
    expect(message).toContain('broken.mrcs');
    expect(message).toContain('file too short');
    expect(await page.evaluate(() => document.body.dataset.state)).toBe('ready');
    expect(await page.isEnabled('#start')).toBe(true);
    await page.close();
  });

  it('explains a browser without WebGPU', async () => {
    const { page } = await openPage(() => {
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined });
    });
    expect(await page.evaluate(() => document.body.dataset.state)).toBe('unsupported');
    expect(await page.textContent('#message')).toContain('does not offer WebGPU');
    expect(await page.isEnabled('#start')).toBe(false);
    await page.close();
  });
});
