/**
 * @jest-environment node
 *
 * src/api/schema.d.ts is generated from ../openapi.json; regenerate it into a temporary file and fail
 * when the committed one differs (run `npm run generate:api` to update it).
 */
import { execFileSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';

test('the generated API client types match openapi.json', () => {
  const root = join(__dirname, '..');
  const dir = mkdtempSync(join(tmpdir(), 'quorum-api-types-'));
  try {
    const fresh = join(dir, 'schema.d.ts');
    // The very command `npm run generate:api` runs, with the output sent to the temporary file.
    const script: string = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts['generate:api'];
    const args = script.split(/\s+/).slice(1).map((arg) => (arg === 'src/api/schema.d.ts' ? fresh : arg));
    execFileSync(process.execPath, [join(root, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'), ...args], { cwd: root, stdio: 'pipe' });
    const committed = readFileSync(join(root, 'src', 'api', 'schema.d.ts'), 'utf8');
    expect(committed === readFileSync(fresh, 'utf8') ? 'up to date' : 'stale: run `npm run generate:api` in mobile/').toBe('up to date');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
