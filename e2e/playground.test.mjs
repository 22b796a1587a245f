// Browser test of crmhub's /playground: Debian's headless Chromium, driven by
// playwright-core, loads GraphiQL from the server's embedded assets with every
// request off this machine blocked, puts a bearer token in the headers editor,
// runs `{ viewer { role } }` and reads the role in the result pane.
//
// Environment:
//   CRMHUB_URL          the server, default http://127.0.0.1:8080
//   CRMHUB_TOKEN        an API token (required)
//   CRMHUB_EXPECT_ROLE  the token's role, default OWNER
//   CRMHUB_SCREENSHOT   where to save a screenshot, default /tmp/playground.png
//   CHROMIUM_PATH       the browser, default /usr/bin/chromium
//
// Run: cd e2e && npm ci && CRMHUB_TOKEN=... npm test
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

const baseURL = new URL(process.env.CRMHUB_URL || 'http://127.0.0.1:8080');
const token = process.env.CRMHUB_TOKEN || '';
const expectRole = process.env.CRMHUB_EXPECT_ROLE || 'OWNER';
const screenshotPath = process.env.CRMHUB_SCREENSHOT || '/tmp/playground.png';
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

// Each wait is bounded so a broken page fails in seconds, not at the runner's
// timeout.
const WAIT_MS = 20_000;

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

// allowed reports whether the browser may reach url: only this machine (and
// the server under test, wherever CRMHUB_URL points). data: and blob: URLs
// never leave the browser.
function allowed(url) {
  const u = new URL(url);
  if (u.protocol === 'data:' || u.protocol === 'blob:' || u.protocol === 'about:') {
    return true;
  }
  return LOOPBACK.has(u.hostname) || u.hostname.startsWith('127.') || u.host === baseURL.host;
}

let userDataDir;
let context;
let page;
const offMachine = []; // requests to anywhere else, aborted
const cspViolations = []; // console reports of the Content-Security-Policy
const pageErrors = []; // uncaught exceptions in the page

before(async () => {
  assert.ok(token, 'set CRMHUB_TOKEN to an API token (e.g. one printed by `crmhub dev`)');
  userDataDir = await mkdtemp(join(tmpdir(), 'crmhub-e2e-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 800 },
  });

  // Abort, and remember, anything that would leave the machine. The page
  // must work without it: it is the whole point of the embedded assets.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (allowed(url)) {
      return route.continue();
    }
    offMachine.push(url);
    return route.abort('blockedbyclient');
  });
  context.on('request', (req) => {
    if (!allowed(req.url()) && !offMachine.includes(req.url())) {
      offMachine.push(req.url());
    }
  });

  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(WAIT_MS);
  page.on('websocket', (ws) => {
    if (!allowed(ws.url())) {
      offMachine.push(ws.url());
    }
  });
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) {
      cspViolations.push(msg.text());
    }
  });
  page.on('pageerror', (err) => pageErrors.push(String(err)));
});

after(async () => {
  await context?.close();
  if (userDataDir) {
    await rm(userDataDir, { recursive: true, force: true });
  }
});

// editorValue returns the text of the CodeMirror editor under selector.
function editorValue(selector) {
  return page.$eval(`${selector} .CodeMirror`, (el) => el.CodeMirror.getValue());
}

// replaceEditorText selects everything in the editor under selector and
// types text over it, as a person would.
async function replaceEditorText(selector, text) {
  await page.click(`${selector} .CodeMirror-lines`);
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Backspace');
  await page.keyboard.type(text);
  // Autocompletion hints may still be open; Escape closes them without
  // changing the text.
  await page.keyboard.press('Escape');
}

const QUERY_EDITOR = '.graphiql-query-editor';
const HEADERS_EDITOR = '.graphiql-editor-tool .graphiql-editor:not(.hidden)';
const RESULT = '.graphiql-response';

test('playground runs { viewer { role } } with a bearer token, offline', async () => {
  const url = new URL('playground/', baseURL.href.endsWith('/') ? baseURL : `${baseURL.href}/`).href;
  const response = await page.goto(url, { waitUntil: 'domcontentloaded' });
  assert.equal(response.status(), 200, `GET ${url}`);
  assert.match(response.headers()['content-security-policy'] ?? '', /script-src 'self'/);

  await page.waitForSelector(`${QUERY_EDITOR} .CodeMirror`);

  // A fresh profile starts with the Authorization template in the headers
  // editor, which is open by default.
  await page.click('button[data-name="headers"]');
  await page.waitForSelector(`${HEADERS_EDITOR} .CodeMirror`);
  assert.deepEqual(JSON.parse(await editorValue(HEADERS_EDITOR)), { Authorization: 'Bearer ' });

  await replaceEditorText(HEADERS_EDITOR, `{"Authorization": "Bearer ${token}"}`);
  assert.deepEqual(JSON.parse(await editorValue(HEADERS_EDITOR)), { Authorization: `Bearer ${token}` });

  await replaceEditorText(QUERY_EDITOR, '{ viewer { role } }');
  assert.equal((await editorValue(QUERY_EDITOR)).replace(/\s+/g, ' ').trim(), '{ viewer { role } }');

  const sent = page.waitForRequest((req) => req.method() === 'POST' && /viewer/.test(req.postData() ?? ''));
  await page.click('button.graphiql-execute-button');
  const request = await sent;
  assert.equal(request.headers().authorization, `Bearer ${token}`, 'the headers editor sets Authorization');

  // The result pane shows the answer: the role, or an error that the
  // assertions below print.
  await page.waitForFunction((sel) => {
    const el = document.querySelector(`${sel} .CodeMirror`);
    return el && /"(data|errors)"/.test(el.CodeMirror.getValue());
  }, RESULT);
  const result = JSON.parse(await editorValue(RESULT));
  assert.equal(result.errors, undefined, `no errors: ${JSON.stringify(result.errors)}`);
  assert.equal(result.data?.viewer?.role, expectRole);
  assert.match(await page.innerText(RESULT), new RegExp(`"role":\\s*"${expectRole}"`));

  await page.screenshot({ path: screenshotPath });

  // GraphiQL keeps the headers in localStorage, written 500 ms after the last
  // edit; a person does not reload faster than that, so wait for the write.
  // After it, a reload still has the token.
  // GraphiQL restores its tabs (headers included) from graphiql:tabState;
  // the Playground fetches the schema with graphiql:headers.
  await page.waitForFunction(
    (tok) => ['graphiql:tabState', 'graphiql:headers'].every((k) => (localStorage.getItem(k) ?? '').includes(tok)),
    token,
  );
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.waitForSelector(`${QUERY_EDITOR} .CodeMirror`);
  await page.click('button[data-name="headers"]');
  await page.waitForSelector(`${HEADERS_EDITOR} .CodeMirror`);
  assert.deepEqual(JSON.parse(await editorValue(HEADERS_EDITOR)), { Authorization: `Bearer ${token}` });

  assert.deepEqual(offMachine, [], 'no request may leave this machine');
  assert.deepEqual(cspViolations, [], 'the page must run under its Content-Security-Policy');
  assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
});
