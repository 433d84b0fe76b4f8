/**
 * End to end: the exported web build, a real Quorum service (`quorum run`: embedded PostgreSQL and
 * Redis, API, worker, beat) in a temporary data folder, and Debian's headless Chromium driven by
 * playwright-core. Walks register → log in → link a paper key → edit the bot → start it → see a
 * decision, and saves a screenshot of every screen in the folder it prints.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { serveApp } from './serve.mjs';

const mobile = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repo = resolve(mobile, '..');
const dist = join(mobile, 'dist');
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const shots = resolve(process.env.E2E_SCREENSHOTS ?? join(mobile, 'e2e-artifacts', stamp));
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const uv = process.env.UV ?? 'uv';
const VIEWPORT = { width: 430, height: 932 };
const DECISION_TIMEOUT_MS = Number(process.env.E2E_DECISION_TIMEOUT_MS ?? 180_000);

const log = (...args) => console.log('[e2e]', ...args);

function freePort() {
  return new Promise((ok, fail) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => ok(port));
    });
  });
}

async function waitForHealth(origin, service, deadlineMs) {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (service.exitCode !== null) throw new Error(`quorum run exited with ${service.exitCode} before the API answered`);
    try {
      const res = await fetch(`${origin}/ready`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the API at ${origin} did not become ready in ${deadlineMs / 1000}s`);
}

async function startService(dataHome) {
  const [port, pgPort, redisPort] = [await freePort(), await freePort(), await freePort()];
  const env = { ...process.env, PORT: String(port), DATA_HOME: dataHome, EMBEDDED_PG_PORT: String(pgPort), EMBEDDED_REDIS_PORT: String(redisPort), UV_PYTHON_DOWNLOADS: 'never' };
  log(`starting quorum run (API port ${port}, data in ${dataHome})`);
  const service = spawn(uv, ['run', '--frozen', 'quorum', 'run'], { cwd: repo, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = [];
  const keep = (chunk) => {
    output.push(chunk.toString());
    if (output.length > 400) output.shift();
  };
  service.stdout.on('data', keep);
  service.stderr.on('data', keep);
  const stop = async () => {
    if (service.exitCode !== null) return;
    const exited = new Promise((r) => service.once('exit', r));
    try {
      process.kill(-service.pid, 'SIGTERM'); // its own process group: uv, the supervisor and everything it spawned
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-service.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 30_000);
    await exited;
    clearTimeout(timer);
  };
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(origin, service, 180_000);
  } catch (error) {
    console.error(output.join(''));
    await stop();
    throw error;
  }
  return { origin, stop, output };
}

async function main() {
  mkdirSync(shots, { recursive: true });
  const dataHome = mkdtempSync(join(tmpdir(), 'quorum-e2e-'));
  const started = Date.now();
  let service = null;
  let web = null;
  let browser = null;
  let page = null;
  let step = 0;
  const shot = async (name) => {
    step += 1;
    const file = join(shots, `${String(step).padStart(2, '0')}-${name}.png`);
    // Screens scroll inside their own view, not the page: grow the window to the longest one for the picture.
    const overflow = await page.evaluate(() => {
      // The screen in front: inactive tabs stay mounted behind it.
      const front = document.elementFromPoint(window.innerWidth / 2, window.innerHeight / 2)?.closest('[data-testid^="screen-"]');
      return front ? Math.max(0, front.scrollHeight - front.clientHeight) : 0;
    });
    await page.setViewportSize({ width: VIEWPORT.width, height: VIEWPORT.height + overflow });
    await page.screenshot({ path: file });
    await page.setViewportSize(VIEWPORT);
    log(`screenshot ${file}`);
  };

  try {
    service = await startService(dataHome);
    log(`API ready at ${service.origin} after ${((Date.now() - started) / 1000).toFixed(1)}s`);
    web = await serveApp({ dist, apiOrigin: service.origin });
    const appUrl = `http://127.0.0.1:${web.address().port}`;
    log(`web build at ${appUrl}`);

    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: VIEWPORT });
    const consoleErrors = [];
    page.on('pageerror', (error) => consoleErrors.push(String(error)));
    page.setDefaultTimeout(20_000);
    const byId = (id) => page.getByTestId(id);
    const visible = (id) => byId(id).first().waitFor({ state: 'visible' });

    const email = `e2e-${Date.now()}@example.com`;
    const password = 'correct horse battery staple';

    await page.goto(appUrl);
    await visible('screen-login');
    await shot('login');

    await byId('go-register').click();
    await visible('screen-register');
    await byId('field-email').last().fill(email);
    await byId('field-password').last().fill('short');
    await byId('register-submit').click();
    await visible('error-password'); // the client refuses a password the server would refuse
    await shot('register-validation');
    await byId('field-password').last().fill(password);
    await byId('register-submit').click();
    await visible('screen-home');
    log(`registered ${email}`);

    // Log out and back in: the login path, not just registration, reaches the app.
    await byId('tab-settings').click();
    await visible('screen-settings');
    await page.getByText(email).first().waitFor();
    await page.locator('[data-testid^="pref-"]').first().waitFor(); // the notification preferences from the API
    await shot('settings');
    await byId('logout').click();
    await visible('screen-login');
    await byId('field-email').fill(email);
    await byId('field-password').fill('not the password');
    await byId('login-submit').click();
    await visible('banner');
    await shot('login-refused');
    await byId('field-password').fill(password);
    await byId('login-submit').click();
    await visible('screen-home');
    log('logged in');

    await byId('tab-keys').click();
    await visible('screen-exchange-keys');
    await visible('key-guidance');
    await byId('exchange-paper').click();
    await byId('field-label').fill('Paper account');
    await byId('link-submit').click();
    await visible('key-Paper account');
    await shot('exchange-keys');
    log('linked a paper key');

    await byId('tab-bot').click();
    await visible('screen-bot-config');
    await byId('field-leverage').fill('60');
    await byId('bot-save').click();
    await visible('error-leverage'); // the schema's limit, checked before anything is sent
    await shot('bot-config-validation');
    await byId('field-name').fill('E2E bot');
    await byId('field-leverage').fill('2');
    await byId('field-riskPerTradePct').fill('0.5');
    await byId('field-cycleIntervalSeconds').fill('60');
    await byId('bot-key-Paper account').click();
    await byId('bot-save').click();
    await visible('bot-saved');
    await shot('bot-config');
    log('saved the bot configuration');

    await byId('tab-home').click();
    await visible('bot-E2E bot');
    await page.getByText('Live updates on').waitFor(); // the event stream is open
    await byId('bot-start').click();
    await visible('bot-stop');
    await shot('home-running');
    log('started the bot; waiting for a decision to arrive on Home through the stream');

    // Home read the (empty) decision list before the start; only a stream event makes it read again.
    try {
      await byId('decision').first().waitFor({ state: 'visible', timeout: DECISION_TIMEOUT_MS });
    } catch (error) {
      await shot('home-no-decision');
      throw new Error(`no decision appeared on Home within ${DECISION_TIMEOUT_MS / 1000}s: ${error.message}`);
    }
    await shot('home-with-decision');
    log('a decision appeared on Home');

    await byId('tab-activity').click();
    await visible('screen-activity');
    await byId('decision-reason').first().waitFor();
    await shot('activity');
    log('the Activity screen shows it with its reasons');

    // Panic from Settings: the password, the browser's confirmation, then every bot stopped by the worker.
    await byId('tab-settings').click();
    await visible('panic');
    await byId('field-panicPassword').fill(password);
    page.once('dialog', (dialog) => dialog.accept());
    await byId('panic-close-all').click();
    await byId('panic-outcome').getByText(/Every bot is stopped/).waitFor({ timeout: 60_000 });
    await shot('settings-closed-everything');
    await byId('tab-home').click();
    await byId('bot-status').getByText('○ Stopped').waitFor();
    log('closed everything from Settings; the bot shows stopped');

    if (consoleErrors.length) throw new Error(`the page threw: ${consoleErrors.join('\n')}`);

    // The API's own docs, as an integrator opens them: rendered offline (nothing fetched from elsewhere),
    // every operation listed, and a request body's example shown rather than one made up from its pattern.
    const elsewhere = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(service.origin) && !request.url().startsWith('data:')) elsewhere.push(request.url());
    });
    await page.setViewportSize({ width: 1200, height: 900 });
    await page.goto(`${service.origin}/schema/swagger`);
    await page.locator('.opblock').first().waitFor({ state: 'visible' });
    const operations = await page.locator('.opblock').count();
    if (operations < 20) throw new Error(`the docs list ${operations} operations`);
    await page.locator('.opblock-summary-path', { hasText: '/v1/auth/register' }).first().click();
    await page.getByText('ada@example.com').first().waitFor();
    await page.screenshot({ path: join(shots, `${String(++step).padStart(2, '0')}-api-docs.png`) });
    if (elsewhere.length) throw new Error(`the docs fetched from elsewhere: ${elsewhere.join(', ')}`);
    log(`the API docs render offline with ${operations} operations and real examples`);
    log(`passed in ${((Date.now() - started) / 1000).toFixed(1)}s; screenshots in ${shots}`);
  } catch (error) {
    if (page) await shot('failure').catch(() => undefined);
    if (service) console.error(service.output.slice(-60).join(''));
    throw error;
  } finally {
    await browser?.close();
    web?.close();
    await service?.stop();
    rmSync(dataHome, { recursive: true, force: true });
    console.log(`[e2e] screenshots: ${shots}`);
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error('[e2e] FAILED:', error.message);
    process.exit(1);
  },
);
