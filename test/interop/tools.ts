/**
 * Runs the field's own tools on files in a temporary folder: Debian's python3-mrcfile under
 * /usr/bin/python3 (the python3 first in PATH may lack it) and RELION's command-line programs
 * in /usr/bin. scripts/setup.sh installs both.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

export const PYTHON = '/usr/bin/python3';

export const RELION_PROGRAMS = ['relion_image_handler', 'relion_stack_create', 'relion_star_handler'] as const;
export type RelionProgram = (typeof RELION_PROGRAMS)[number];

const SETUP_HINT = 'Run `bash scripts/setup.sh` as root to install RELION and python3-mrcfile.';

/** Time limit of one tool run. Each run here takes well under a second. */
const TOOL_TIMEOUT_MS = 60_000;

export interface ToolOutput {
  stdout: string;
  stderr: string;
}

/** Message of the failed tool check, null after a passed check, or undefined before the check. */
let toolProblem: string | null | undefined;

/**
 * Checks once per process that /usr/bin/python3 imports mrcfile and numpy and that the RELION
 * programs exist.
 * @throws Error naming the missing tool and the setup script, on every call after a failed check
 */
export function requireTools(): void {
  toolProblem ??= findToolProblem();
  if (toolProblem !== null) throw new Error(toolProblem);
}

function findToolProblem(): string | null {
  for (const program of [PYTHON, ...RELION_PROGRAMS.map((name) => `/usr/bin/${name}`)]) {
    try {
      accessSync(program, constants.X_OK);
    } catch {
      return `${program} is missing or not executable. ${SETUP_HINT}`;
    }
  }
  const result = spawnSync(PYTHON, ['-c', 'import mrcfile, numpy'], { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS });
  if (result.status !== 0) {
    const reason = result.error?.message ?? result.stderr.trim().split('\n').pop();
    return `${PYTHON} cannot import mrcfile and numpy (${reason}). ${SETUP_HINT}`;
  }
  return null;
}

/**
 * Runs a program with an argument array in cwd.
 * @throws Error with the command, exit status and stderr when it fails to start or exits non-zero
 */
export function runTool(program: string, args: readonly string[], cwd: string): ToolOutput {
  const result = spawnSync(program, args, { cwd, encoding: 'utf8', timeout: TOOL_TIMEOUT_MS });
  const command = [program, ...args].join(' ');
  if (result.error !== undefined) {
    const code = (result.error as NodeJS.ErrnoException).code;
    if (code === 'ETIMEDOUT') throw new Error(`${command} (in ${cwd}) timed out after ${TOOL_TIMEOUT_MS} ms`);
    throw new Error(`${command} failed to start: ${result.error.message}. ${SETUP_HINT}`);
  }
  if (result.status !== 0) {
    const status = result.status === null ? `signal ${result.signal}` : `status ${result.status}`;
    throw new Error(`${command} (in ${cwd}) exited with ${status}:\n${result.stderr.slice(-2000)}`);
  }
  return { stdout: result.stdout, stderr: result.stderr };
}

/** Runs a RELION program from /usr/bin in cwd. */
export function runRelion(program: RelionProgram, args: readonly string[], cwd: string): ToolOutput {
  return runTool(`/usr/bin/${program}`, args, cwd);
}

/** Runs Python code under /usr/bin/python3 and parses the JSON on the last line of its stdout. */
export function runPython<T>(code: string, args: readonly string[], cwd: string): T {
  const { stdout } = runTool(PYTHON, ['-c', code, ...args], cwd);
  const lines = stdout.trimEnd().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

/** One line of `relion_image_handler --stats`. */
export interface RelionImageStats {
  name: string;
  x: number;
  y: number;
  z: number;
  n: number;
  mean: number;
  stddev: number;
  min: number;
  max: number;
  pixelSize: number;
}

const STATS_LINE =
  /^(\S+) : \(x,y,z,n\)= (\d+) x (\d+) x (\d+) x (\d+) ; avg= (\S+) stddev= (\S+) minval= (\S+) maxval= (\S+); angpix = (\S+)$/;

/**
 * Parses the per-image lines that `relion_image_handler --stats` prints in RELION 3.1.3, such as
 * `000001@a.mrcs : (x,y,z,n)= 16 x 12 x 1 x 1 ; avg= 0.79 stddev= 2.27 minval= -2.9 maxval= 4.4;
 * angpix = 1.7` on one line. Other lines are skipped.
 */
export function parseRelionStats(stdout: string): RelionImageStats[] {
  const stats: RelionImageStats[] = [];
  for (const line of stdout.split('\n')) {
    const match = STATS_LINE.exec(line.trim());
    if (match === null) continue;
    const [x, y, z, n, mean, stddev, min, max, pixelSize] = match.slice(2).map(Number);
    stats.push({ name: match[1], x, y, z, n, mean, stddev, min, max, pixelSize });
  }
  return stats;
}

/**
 * Pearson correlation of two size × size images over the pixels within radius of the centre
 * (⌊size/2⌋, ⌊size/2⌋), so content moved in from outside the box is left out.
 */
export function discCorrelation(a: ArrayLike<number>, b: ArrayLike<number>, size: number, radius: number): number {
  const centre = Math.floor(size / 2);
  const indices: number[] = [];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if ((x - centre) ** 2 + (y - centre) ** 2 <= radius * radius) indices.push(y * size + x);
    }
  }
  let meanA = 0;
  let meanB = 0;
  for (const i of indices) {
    meanA += a[i];
    meanB += b[i];
  }
  meanA /= indices.length;
  meanB /= indices.length;
  let cross = 0;
  let squaresA = 0;
  let squaresB = 0;
  for (const i of indices) {
    cross += (a[i] - meanA) * (b[i] - meanB);
    squaresA += (a[i] - meanA) ** 2;
    squaresB += (b[i] - meanB) ** 2;
  }
  return cross / Math.sqrt(squaresA * squaresB);
}

/**
 * Wraps a suite's setup so that it runs once, on first use. Every later call returns the same
 * value or throws the same error, so each test of a suite whose setup failed fails with that error.
 */
export function once<T>(make: () => T): () => T {
  let outcome: { value: T } | { error: unknown } | undefined;
  return () => {
    if (outcome === undefined) {
      try {
        outcome = { value: make() };
      } catch (error) {
        outcome = { error };
      }
    }
    if ('error' in outcome) throw outcome.error;
    return outcome.value;
  };
}
