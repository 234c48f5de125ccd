import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/**
 * Returns the version in classify2d's package.json, found by walking up from this module,
 * which sits at a different depth in src/ and in dist/.
 */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  let folder = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const path = join(folder, 'package.json');
    if (existsSync(path)) {
      const manifest = JSON.parse(readFileSync(path, 'utf8')) as { name?: string; version?: string };
      if (manifest.name === 'classify2d') return (cached = manifest.version ?? 'unknown');
    }
    const parent = dirname(folder);
    if (parent === folder) return (cached = 'unknown');
    folder = parent;
  }
}
