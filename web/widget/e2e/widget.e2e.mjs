// Browser test of the widget against a real Metachat server, driven by
// cmd/metachat/widget_browser_test.go (which starts the server, creates the tenant and the widget,
// serves the host page from another origin with a strict CSP and hostile CSS, and stops and starts
// the server when asked on its control URL).
//
// Environment:
//   METACHAT_API          the server's origin (http://127.0.0.1:PORT)
//   METACHAT_HOST_PAGE    the host page's URL (another origin)
//   METACHAT_WIDGET_ID    the widget
//   METACHAT_TOKEN        an owner's access token (REST API)
//   METACHAT_CONTROL      control URL: POST /stop and POST /start stop and restart the server
//   METACHAT_SCREENSHOTS  directory for the screenshots
//   CHROMIUM              the browser (default /usr/bin/chromium)
//
// Exits non-zero on any failed check, and on any console error or page error — except the
// browser's own network-failure messages while the test keeps the server down on purpose.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const ACK_TIMEOUT = 8000; // the widget's, src/widget.ts

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`e2e: environment variable ${name} is required`);
    process.exit(2);
  }
  return v;
}

const API = need('METACHAT_API').replace(/\/$/, '');
const HOST_PAGE = need('METACHAT_HOST_PAGE');
const WIDGET_ID = need('METACHAT_WIDGET_ID');
const TOKEN = need('METACHAT_TOKEN');
const CONTROL = need('METACHAT_CONTROL').replace(/\/$/, '');
const SHOTS = need('METACHAT_SCREENSHOTS');
mkdirSync(SHOTS, { recursive: true });

const started = Date.now();
const log = (...a) => console.log(`[e2e +${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

// A hard limit, so a hung browser or server cannot hang the Go test.
const deadline = setTimeout(() => {
  console.error('e2e: FAILED: the whole run took longer than 8 minutes');
  process.exit(1);
}, 8 * 60 * 1000);

// ---- console and page errors ----

const problems = [];
let outage = false; // the server is down on purpose
// What Chromium itself logs when a request or a socket cannot reach a server that is down.
const NETWORK_FAILURE = [
  /^Failed to load resource: net::ERR_/,
  /^WebSocket connection to 'ws:\/\/[^']+' failed/,
];

function watch(page, label) {
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (outage && NETWORK_FAILURE.some((re) => re.test(text))) {
      log(`${label}: (expected during the outage) ${text}`);
      return;
    }
    problems.push(`${label}: console.error: ${text}`);
    log(`${label}: CONSOLE ERROR: ${text}`);
  });
  page.on('pageerror', (err) => {
    problems.push(`${label}: page error: ${err.message}`);
    log(`${label}: PAGE ERROR: ${err.message}`);
  });
}

// ---- helpers ----

async function api(method, path, body) {
  const r = await fetch(API + path, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Failure(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function control(action) {
  log(`control: ${action}`);
  const r = await fetch(`${CONTROL}/${action}`, { method: 'POST' });
  if (!r.ok) throw new Failure(`control ${action}: ${r.status} ${await r.text()}`);
  log(`control: ${action} done`);
}

async function shot(page, name) {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, animations: 'disabled' });
  log(`screenshot ${path}`);
}

const widget = (page) => page.locator('metachat-widget');
const launcher = (page) => page.locator('metachat-widget button.l');
const panel = (page) => page.locator('metachat-widget .p');
const input = (page) => page.locator('metachat-widget textarea');
const item = (page, text) => page.locator('metachat-widget li.m').filter({ has: page.locator('.t', { hasText: text }) });

/** stored reads the widget's localStorage entry. */
const stored = (page) => page.evaluate((id) => JSON.parse(localStorage.getItem('metachat:' + id) || 'null'), WIDGET_ID);

/**
 * recordStatuses logs every delivery state each message goes through (window.__mcStatuses), from
 * a MutationObserver on the shadow root: pending → sent can be faster than any polling.
 */
async function recordStatuses(page) {
  await widget(page).waitFor({ state: 'attached' });
  await page.evaluate(() => {
    const root = document.querySelector('metachat-widget').shadowRoot;
    const seen = (window.__mcStatuses = window.__mcStatuses || {});
    const rec = (li) => {
      const k = li.dataset.key;
      const s = li.dataset.status;
      if (!k || !s) return;
      const list = (seen[k] = seen[k] || []);
      if (list[list.length - 1] !== s) list.push(s);
    };
    root.querySelectorAll('li').forEach(rec);
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === 'attributes') rec(r.target);
        for (const n of r.addedNodes) if (n.nodeName === 'LI') rec(n);
      }
    }).observe(root, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
  });
}

async function statusesOf(page, text) {
  const key = await item(page, text).getAttribute('data-key');
  return page.evaluate((k) => (window.__mcStatuses || {})[k] || [], key);
}

async function waitStatus(page, text, status, timeout) {
  await page.locator('metachat-widget li.m[data-status="' + status + '"]').filter({ has: page.locator('.t', { hasText: text }) }).waitFor({ timeout });
}

/** send types a message and presses Enter. */
async function send(page, text) {
  await input(page).fill(text);
  await input(page).press('Enter');
  await item(page, text).waitFor({ timeout: 5000 });
}

async function storedOnce(conversationId, text, cid) {
  const { items } = await api('GET', `/api/v1/conversations/${conversationId}/messages?limit=200`);
  const same = items.filter((m) => m.text === text);
  check(same.length === 1, `"${text}" is stored ${same.length} times, want exactly once`);
  check(same[0].client_message_id === cid, `"${text}" stored with client_message_id ${same[0].client_message_id}, want ${cid}`);
  check(same[0].author.type === 'contact', `"${text}" stored with author ${JSON.stringify(same[0].author)}`);
  return items;
}

/** shadowFacts reads what the isolation checks need from inside and outside the shadow root. */
function shadowFacts(page) {
  return page.evaluate(() => {
    const host = document.querySelector('metachat-widget');
    const root = host.shadowRoot;
    const cs = (el) => getComputedStyle(el);
    const pick = (el, props) => Object.fromEntries(props.map((p) => [p, cs(el).getPropertyValue(p)]));
    const hostP = document.querySelector('p');
    return {
      open: !!root && root.mode === 'open',
      sheets: root ? root.adoptedStyleSheets.length : 0,
      styleElements: root ? root.querySelectorAll('style').length : -1,
      styleAttributes: root ? [...root.querySelectorAll('[style]')].map((e) => e.getAttribute('style')) : [],
      hostPage: hostP ? pick(hostP, ['color', 'font-size']) : null,
      host: pick(host, ['position', 'display', 'z-index', 'transform']),
      launcher: pick(root.querySelector('.l'), ['width', 'height', 'border-top-left-radius', 'background-color', 'color', 'position', 'display']),
      box: pick(root.querySelector('.w'), ['font-size', 'color']),
      title: root.querySelector('.hd h2') ? pick(root.querySelector('.hd h2'), ['font-size', 'color']) : null,
      textarea: pick(root.querySelector('textarea'), ['font-size', 'color', 'border-top-left-radius']),
    };
  });
}

/** contrast is the widget's text colour on a primary background (src/view.ts). */
function contrast(hex) {
  const n = parseInt(hex.slice(1), 16);
  const y = (0.299 * (n >> 16) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255)) / 255;
  return y > 0.62 ? '#111827' : '#ffffff';
}

const rgb = (hex) => {
  const n = parseInt(hex.slice(1), 16);
  return `rgb(${n >> 16}, ${(n >> 8) & 255}, ${n & 255})`;
};

// ---- the run ----

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let page;
let exitCode = 0;
try {
  const w = await api('GET', `/api/v1/widgets/${WIDGET_ID}`);
  log(`widget "${w.name}" primary ${w.colors.primary}, origins ${w.allowed_origins.join(' ')}`);

  const context = await browser.newContext({ viewport: { width: 1024, height: 720 } });
  page = await context.newPage();
  watch(page, 'visitor');

  // Socket frames the page sends, to check resume and the typing throttle.
  const sent = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => sent.push(String(f.payload))));

  // ---- scenario 6 (and the closed state): the host page's hostile CSS does not reach the widget ----
  log('load the host page');
  await page.goto(HOST_PAGE);
  await launcher(page).waitFor({ state: 'visible', timeout: 30000 });
  await recordStatuses(page);
  await page.waitForTimeout(300); // let the entrance settle for the picture
  let f = await shadowFacts(page);
  log('closed:', JSON.stringify(f));
  check(f.open, 'the widget has no open shadow root');
  check(f.sheets >= 1 && f.styleElements === 0, `styles must be adopted stylesheets (sheets ${f.sheets}, <style> ${f.styleElements})`);
  check(f.hostPage && f.hostPage.color === 'rgb(255, 0, 0)' && f.hostPage['font-size'] === '40px', `the host page's hostile CSS is not in effect: ${JSON.stringify(f.hostPage)}`);
  check(f.host.position === 'fixed' && f.host.display === 'block' && f.host.transform === 'none', `host element restyled from outside: ${JSON.stringify(f.host)}`);
  check(f.launcher.width === '60px' && f.launcher.height === '60px' && f.launcher['border-top-left-radius'] === '50%', `launcher is not a 60px circle: ${JSON.stringify(f.launcher)}`);
  check(f.launcher['background-color'] === rgb(w.colors.primary), `launcher colour ${f.launcher['background-color']}, want the widget's primary ${rgb(w.colors.primary)}`);
  check(f.box['font-size'] === '14px' && f.box.color === rgb(w.colors.text), `widget text restyled: ${JSON.stringify(f.box)}`);
  check(f.textarea['font-size'] === '14px' && f.textarea.color !== 'rgb(255, 0, 0)', `input restyled: ${JSON.stringify(f.textarea)}`);
  check(f.styleAttributes.every((s) => /^(--[a-z]+: #[0-9a-f]{6}; )*(--[a-z]+: #[0-9a-f]{6};)?$/i.test(s) || /^height: \d+px;$/.test(s)), `unexpected style attributes ${JSON.stringify(f.styleAttributes)}`);
  check((await launcher(page).getAttribute('aria-label')).startsWith('Open chat'), 'launcher label');
  check(await panel(page).isHidden(), 'the panel is open before the launcher was clicked');
  await shot(page, 'closed');

  // ---- scenario 1: open, send (pending → sent), reload, history still there ----
  log('scenario 1: open, send, reload');
  await launcher(page).click();
  await panel(page).waitFor({ state: 'visible' });
  check(await input(page).evaluate((el) => el.getRootNode().activeElement === el), 'focus did not move into the panel on open');
  check((await launcher(page).getAttribute('aria-expanded')) === 'true', 'aria-expanded not true when open');
  check((await page.locator('metachat-widget .hd h2').textContent()) === w.name, 'panel title is not the widget name');
  if (w.greeting) check((await page.locator('metachat-widget .g').textContent()) === w.greeting, 'greeting not shown');
  check((await page.locator('metachat-widget ol').getAttribute('aria-live')) === 'polite', 'message list is not aria-live=polite');
  check(await page.locator('metachat-widget button[aria-label="Send message"]').isVisible(), 'no labelled send button');
  check(await page.locator('metachat-widget .hd button[aria-label="Close chat"]').isVisible(), 'no labelled close button');
  await page.locator('metachat-widget .hd p.on').waitFor({ timeout: 20000 }); // "Online": socket up
  f = await shadowFacts(page);
  check(f.title.color === rgb(contrast(w.colors.primary)) && f.title['font-size'] === '16px', `title restyled: ${JSON.stringify(f.title)}`);

  const m1 = 'Hello from the browser test';
  const typingBefore = sent.filter((s) => s.includes('"typing"')).length;
  await input(page).pressSequentially('Hello', { delay: 20 });
  await page.waitForTimeout(300); // frame events arrive asynchronously
  const typingFrames = sent.filter((s) => s.includes('"typing"')).length - typingBefore;
  check(typingFrames === 1, `typing 5 characters sent ${typingFrames} typing frames, want 1 (throttled)`);
  await input(page).fill('');
  await shot(page, 'open');
  await send(page, m1);
  await waitStatus(page, m1, 'sent', 15000);
  check(JSON.stringify(await statusesOf(page, m1)) === '["pending","sent"]', `m1 went through ${JSON.stringify(await statusesOf(page, m1))}, want pending then sent`);
  const cid1 = await item(page, m1).getAttribute('data-cid');
  check(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(cid1), `client_message_id ${cid1} is not a random UUID`);
  check(await item(page, m1).evaluate((li) => li.classList.contains('me')), 'own message not marked as the visitor\'s');
  let st = await stored(page);
  check(st && st.c && st.v && st.m.some((m) => m.cid === cid1 && m.st === 'sent'), `localStorage lacks the conversation or the message: ${JSON.stringify(st)}`);
  const conversation = st.c;
  log(`conversation ${conversation}, visitor ${st.v}`);
  await storedOnce(conversation, m1, cid1);

  sent.length = 0;
  await page.reload();
  await launcher(page).waitFor({ state: 'visible', timeout: 30000 });
  await recordStatuses(page);
  await item(page, m1).waitFor({ timeout: 5000 });
  check(await panel(page).isVisible(), 'the panel did not stay open across the reload');
  check((await item(page, m1).getAttribute('data-status')) === 'sent', 'm1 is not "sent" after the reload');
  await page.locator('metachat-widget .hd p.on').waitFor({ timeout: 20000 });
  const resume = sent.map((s) => JSON.parse(s)).find((x) => x.type === 'resume');
  check(resume && resume.after_seq >= 1, `after the reload the socket did not resume after the last seq: ${JSON.stringify(sent)}`);
  check((await item(page, m1).count()) === 1, 'm1 shown more than once after the reload');

  // ---- scenario 4: a message sent through the REST API appears (and counts as unread while closed) ----
  log('scenario 4: REST message appears, unread badge');
  await input(page).focus();
  await page.keyboard.press('Escape');
  await panel(page).waitFor({ state: 'hidden' });
  check(await launcher(page).evaluate((el) => el.getRootNode().activeElement === el), 'focus did not return to the launcher on Escape');
  const agentText = 'Hello from an agent, through the REST API';
  const agentMsg = await api('POST', `/api/v1/conversations/${conversation}/messages`, { text: agentText, client_message_id: 'e2e-agent-1' });
  await page.locator('metachat-widget .b:not([hidden])').waitFor({ timeout: 15000 });
  check((await page.locator('metachat-widget .b').textContent()) === '1', 'unread badge does not say 1');
  check(/1 unread message/.test(await launcher(page).getAttribute('aria-label')), 'launcher label does not announce the unread message');
  await shot(page, 'unread');
  await launcher(page).focus();
  await page.keyboard.press('Enter'); // the launcher works from the keyboard
  await panel(page).waitFor({ state: 'visible' });
  check(await page.locator('metachat-widget .b').isHidden(), 'unread badge still shown with the panel open');
  await item(page, agentText).waitFor();
  check(await item(page, agentText).evaluate((li) => li.classList.contains('o') && !li.classList.contains('me')), 'agent message not on the others\' side');
  const [mine, theirs] = [await item(page, m1).locator('.t').boundingBox(), await item(page, agentText).locator('.t').boundingBox()];
  check(mine.x + mine.width > theirs.x + theirs.width + 20 && theirs.x < mine.x, `bubbles not visitor-right / agent-left: ${JSON.stringify({ mine, theirs })}`);
  check((await item(page, agentText).getAttribute('data-seq')) === String(agentMsg.seq), 'agent message seq differs from the API\'s');
  st = await stored(page);
  check(st.u === 0, 'unread count not reset on open');

  // ---- scenario 2: server down → pending → failed (retry button) → server back → automatic retry delivers once ----
  log('scenario 2: outage and automatic retry');
  outage = true;
  await control('stop');
  await page.locator('metachat-widget .hd p:not(.on)').waitFor({ timeout: 20000 }); // the widget noticed
  const m2 = 'Sent while the server was down';
  await send(page, m2);
  check((await item(page, m2).getAttribute('data-status')) === 'pending', 'm2 not pending right after sending');
  await shot(page, 'pending');
  await waitStatus(page, m2, 'failed', ACK_TIMEOUT + 5000);
  check(await item(page, m2).locator('button.r').isVisible(), 'failed message has no retry button');
  check(/retry/i.test(await item(page, m2).locator('button.r').getAttribute('aria-label')), 'retry button has no label');
  st = await stored(page);
  const q2 = st.m.find((m) => m.text === m2);
  check(q2 && q2.st === 'failed' && q2.cid, `the failed message is not in the persisted queue: ${JSON.stringify(q2)}`);
  await shot(page, 'failed');
  await page.waitForTimeout(3000); // a few automatic attempts against the stopped server
  await control('start');
  await waitStatus(page, m2, 'sent', 60000);
  outage = false;
  log('m2 statuses', JSON.stringify(await statusesOf(page, m2)));
  check(JSON.stringify(await statusesOf(page, m2)) === '["pending","failed","sent"]', `m2 went through ${JSON.stringify(await statusesOf(page, m2))}, want pending, failed, sent (automatic retry)`);
  const cid2 = await item(page, m2).getAttribute('data-cid');
  check(cid2 === q2.cid, 'the retry used another client_message_id');
  await storedOnce(conversation, m2, cid2);
  await page.locator('metachat-widget .hd p.on').waitFor({ timeout: 20000 });
  await shot(page, 'recovered');

  // A message sent after the outage goes straight through, and the API sees the same history.
  const m3 = 'And one after the server came back';
  await send(page, m3);
  await waitStatus(page, m3, 'sent', 15000);
  const items = await storedOnce(conversation, m3, await item(page, m3).getAttribute('data-cid'));
  const shown = await page.locator('metachat-widget li.m').count();
  check(shown === items.length, `the widget shows ${shown} messages, the API has ${items.length}`);

  // ---- scenario 3: the retry button (a second visitor whose acks are lost) ----
  log('scenario 3: retry button');
  const ctx2 = await browser.newContext({ viewport: { width: 1024, height: 720 } });
  const page2 = await ctx2.newPage();
  watch(page2, 'visitor 2');
  const m4 = 'Retried with the button';
  let dropCid = '';
  let dropping = true;
  let sendsOfM4 = 0;
  await page2.routeWebSocket(/\/api\/v1\/widget\/ws/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((msg) => {
      const fr = JSON.parse(String(msg));
      if (fr.type === 'send' && fr.text === m4) {
        sendsOfM4++;
        if (dropping) dropCid = fr.client_message_id;
      }
      server.send(msg);
    });
    server.onMessage((msg) => {
      if (dropping && dropCid && String(msg).includes(dropCid)) return; // the ack and the echo are lost
      ws.send(msg);
    });
  });
  await page2.goto(HOST_PAGE);
  await launcher(page2).click();
  await recordStatuses(page2);
  await page2.locator('metachat-widget .hd p.on').waitFor({ timeout: 20000 });
  await send(page2, m4);
  await waitStatus(page2, m4, 'failed', ACK_TIMEOUT + 5000);
  check(sendsOfM4 >= 1 && dropCid, 'the message never reached the socket');
  // The tick that marked it failed also resent it (dropped too); let that answer go by. The next
  // automatic attempt is ACK_TIMEOUT later, so what follows the click is the button's doing.
  await page2.waitForTimeout(1000);
  dropping = false;
  const before = sendsOfM4;
  const clickedAt = Date.now();
  await item(page2, m4).locator('button.r').click();
  await waitStatus(page2, m4, 'sent', 5000);
  const took = Date.now() - clickedAt;
  log(`m4 delivered ${took} ms after the click; statuses ${JSON.stringify(await statusesOf(page2, m4))}`);
  check(JSON.stringify(await statusesOf(page2, m4)) === '["pending","failed","pending","sent"]', `m4 went through ${JSON.stringify(await statusesOf(page2, m4))}, want pending, failed, pending (click), sent`);
  check(sendsOfM4 > before, 'the click did not send again');
  check((await item(page2, m4).getAttribute('data-cid')) === dropCid, 'the retry used another client_message_id');
  check(await input(page2).evaluate((el) => el.getRootNode().activeElement === el), 'focus lost after the retry click');
  const conv2 = (await stored(page2)).c;
  check(conv2 && conv2 !== conversation, 'the second visitor shares the first one\'s conversation');
  await storedOnce(conv2, m4, dropCid); // sent at least twice with one client_message_id: stored once
  await ctx2.close();

  // ---- a final reload: everything once, in order, as the API has it ----
  await page.reload();
  await launcher(page).waitFor({ state: 'visible', timeout: 30000 });
  await page.locator('metachat-widget .hd p.on').waitFor({ timeout: 20000 });
  await page.waitForTimeout(500);
  const texts = await page.locator('metachat-widget li.m .t').allTextContents();
  const after = (await api('GET', `/api/v1/conversations/${conversation}/messages?limit=200`)).items.map((m) => m.text);
  check(JSON.stringify(texts) === JSON.stringify(after), `after the final reload the widget shows ${JSON.stringify(texts)}, the API has ${JSON.stringify(after)}`);

  // ---- theming follows the widget's configuration: colours, greeting, side ----
  log('theming: bottom-left, another primary colour and greeting');
  const themed = { primary: '#7c3aed', greeting: 'Welcome back! Ask us anything.' };
  await api('PUT', `/api/v1/widgets/${WIDGET_ID}`, {
    name: w.name,
    allowed_origins: w.allowed_origins,
    colors: { ...w.colors, primary: themed.primary },
    greeting: themed.greeting,
    position: 'bottom-left',
    identity_verification: w.identity_verification,
    assistant_enabled: w.assistant_enabled,
  });
  await page.reload();
  await launcher(page).waitFor({ state: 'visible', timeout: 30000 });
  await page.waitForFunction(
    (want) => {
      const root = document.querySelector('metachat-widget')?.shadowRoot;
      const l = root?.querySelector('.l');
      return !!l && getComputedStyle(l).backgroundColor === want && l.getBoundingClientRect().left < 100;
    },
    rgb(themed.primary),
    { timeout: 15000 },
  );
  check((await page.locator('metachat-widget .g').textContent()) === themed.greeting, 'greeting not updated from the configuration');
  const panelBox = await panel(page).boundingBox();
  check(panelBox && panelBox.x < 100, `panel not on the left: ${JSON.stringify(panelBox)}`);
  await shot(page, 'themed-left');

  // ---- scenario 5: no console errors anywhere ----
  check(problems.length === 0, `console or page errors:\n  ${problems.join('\n  ')}`);
  log('all scenarios passed');
} catch (err) {
  exitCode = 1;
  console.error(`e2e: FAILED: ${err instanceof Failure ? err.message : err.stack || err}`);
  if (problems.length) console.error(`e2e: console or page errors:\n  ${problems.join('\n  ')}`);
  if (page) await page.screenshot({ path: join(SHOTS, 'failure.png') }).catch(() => {});
} finally {
  await browser.close().catch(() => {});
  clearTimeout(deadline);
}
process.exit(exitCode);
