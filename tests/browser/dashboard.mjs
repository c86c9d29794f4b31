// Drives the nikara dashboard in Debian's Chromium (playwright-core, no bundled browser).
// Started by tests/dashboard.rs, which runs the hub and the platform fakes and passes:
//   HUB_URL          http://127.0.0.1:PORT (also the hub's PUBLIC_URL, so OAuth redirects land here)
//   TOKEN            a bearer JWT for the user `owner`
//   SCREENSHOT_DIR   where the screenshots go
//   REVOKED_ACCOUNT  an account the Rust side marked revoked
//   REDDIT_ACCOUNT   an account with one scheduled post, to disconnect
//   FB_ACCOUNT       a healthy Facebook Page account
//   UI_DIR           (optional, development) serve /ui/* from this directory, e.g. src/ui
// Exits non-zero (with the reason) on the first failed check.

import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const HUB = process.env.HUB_URL;
const TOKEN = process.env.TOKEN;
const SHOTS = process.env.SCREENSHOT_DIR || join(tmpdir(), 'nikara-screenshots');
const REVOKED = process.env.REVOKED_ACCOUNT;
const REDDIT = process.env.REDDIT_ACCOUNT;
const FB = process.env.FB_ACCOUNT;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
assert.ok(
  HUB && TOKEN && REVOKED && REDDIT && FB,
  'HUB_URL, TOKEN, REVOKED_ACCOUNT, REDDIT_ACCOUNT and FB_ACCOUNT are required',
);
mkdirSync(SHOTS, { recursive: true });

const T = 30000; // generous: CI runs this beside the rest of the suite on two cores
const started = Date.now();
const log = (...a) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

// Avatars come from the platforms' CDNs over https; there is no internet here, so the browser gets
// a generated picture instead. Page B's picture is broken on purpose (the card shows initials).
const PALETTE = {
  'pbs.twimg.com': ['#1f2937', '#4b5563'],
  'scontent.xx.fbcdn.net': ['#2563eb', '#7c3aed'],
  'styles.redditmedia.com': ['#ea580c', '#f59e0b'],
  'scontent.cdninstagram.com': ['#db2777', '#f97316'],
};
function avatarSvg([a, b]) {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96"><defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="${a}"/><stop offset="1" stop-color="${b}"/></linearGradient></defs><rect width="96" height="96" fill="url(#g)"/><circle cx="48" cy="38" r="17" fill="#fff" fill-opacity=".9"/><path d="M14 92c3-20 17-30 34-30s31 10 34 30z" fill="#fff" fill-opacity=".9"/></svg>`;
}

const problems = [];
function watch(page) {
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') {
      const text = msg.text();
      // The hub's 422 to an invalid post is expected (the test provokes it); Chromium logs it.
      if (/status of 422/.test(text) && /\/api\/posts$/.test(msg.location()?.url || '')) return;
      if (msg.type() === 'error' || /Content.Security.Policy|Refused to/i.test(text))
        problems.push(`console ${msg.type()}: ${text} (${msg.location()?.url || ''})`);
    }
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => {
    const url = req.url();
    // Aborted by us (unknown hosts) or by navigation: not the page's fault.
    if (/^https:/.test(url) || req.failure()?.errorText === 'net::ERR_ABORTED') return;
    problems.push(`request failed: ${url} ${req.failure()?.errorText}`);
  });
}

// A full-page screenshot of a calm page: no notices, no hover, no focus ring, scrolled to the top.
async function shot(page, name, { fullPage = true } = {}) {
  if (fullPage) {
    await page
      .locator('#notices .notice button[aria-label="Dismiss notice"]')
      .evaluateAll((bs) => bs.forEach((b) => b.click()));
    await page.evaluate(() => {
      document.activeElement?.blur();
      window.scrollTo(0, 0);
    });
    await page.mouse.move(0, 0);
  }
  await page.waitForTimeout(250);
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage });
  log('screenshot', path);
}

async function api(method, path, body) {
  const res = await fetch(`${HUB}${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return res.status === 204 ? null : res.json();
}

// `YYYY-MM-DDTHH:MM` of `date` in `timeZone`, as a datetime-local input wants it.
function localInput(date, timeZone) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(date)
      .map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}

const card = (page, name) => page.locator('.account-card', { has: page.locator('.account-name', { hasText: name }) });
const noticeWith = (page, text) => page.locator('#notices .notice', { hasText: text });

async function main() {
  const profile = mkdtempSync(join(tmpdir(), 'nikara-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: false, // --headless=new below
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--hide-scrollbars',
    ],
    viewport: { width: 1280, height: 860 },
    deviceScaleFactor: 1,
    locale: 'en-US',
    timezoneId: 'Europe/Berlin',
  });
  try {
    await context.route(/^https:\/\//, (route) => {
      const url = new URL(route.request().url());
      if (url.pathname.endsWith('fake-page-b.jpg'))
        return route.fulfill({ status: 200, contentType: 'image/jpeg', body: 'not a picture' });
      const colours = PALETTE[url.hostname];
      if (colours) return route.fulfill({ status: 200, contentType: 'image/svg+xml', body: avatarSvg(colours) });
      return route.abort();
    });
    if (process.env.UI_DIR) {
      // Development aid: serve /ui/* from the working tree instead of the assets built into the hub.
      const { readFileSync } = await import('node:fs');
      const types = { js: 'text/javascript', css: 'text/css', svg: 'image/svg+xml' };
      await context.route(/\/ui\//, (route) => {
        const name = new URL(route.request().url()).pathname.replace(/^\/ui\//, '');
        const body = readFileSync(join(process.env.UI_DIR, name));
        route.fulfill({ status: 200, contentType: types[name.split('.').pop()], body });
      });
    }
    await context.exposeFunction('__nikaraCspViolation', (v) => problems.push(`CSP violation: ${v}`));
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) =>
        window.__nikaraCspViolation(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`),
      );
    });
    const page = context.pages()[0] || (await context.newPage());
    watch(page);
    page.setDefaultTimeout(T);

    // ---- sign in with the token in the fragment ------------------------------------------------
    log('open', HUB);
    const resp = await page.goto(`${HUB}/#token=${TOKEN}`);
    const csp = resp.headers()['content-security-policy'] || '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    await page.locator('#nav').waitFor();
    assert.ok(!page.url().includes('token='), `token removed from the URL: ${page.url()}`);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('nikara.token')), TOKEN);
    await page.locator('#session-who', { hasText: 'owner@example.com' }).waitFor();

    // ---- accounts: the revoked page is flagged, every card says when it last synced -------------
    const revoked = page.locator(`#account-${REVOKED}`);
    await revoked.waitFor();
    assert.equal(await revoked.getAttribute('data-status'), 'revoked');
    await revoked.locator('.badge', { hasText: 'Revoked' }).waitFor();
    await revoked.locator('.badge svg').waitFor(); // an icon as well as colour
    await revoked.locator('text=Access was revoked on Facebook').waitFor();
    await revoked.locator('button', { hasText: 'Reconnect' }).waitFor();
    await revoked.locator('.avatar-initials', { hasText: 'FP' }).waitFor(); // its picture is broken
    const labels = await page.locator('.account-card .synced').allTextContents();
    assert.ok(labels.length >= 3 && labels.every((t) => /Never synced|Last synced/.test(t)), `sync labels: ${labels}`);
    assert.equal(
      await page.locator('.account-card').first().getAttribute('data-status'),
      'revoked',
      'accounts needing attention come first',
    );
    log('revoked account flagged');

    // ---- connect X through the fake's consent redirect ---------------------------------------
    // The real thing: the hub's start, the fake's consent screen (a 302), the hub's callback (a 302 to /?connected=x).
    const [consent, callback] = await Promise.all([
      page.waitForRequest((r) => r.url().includes('/i/oauth2/authorize?')),
      page.waitForRequest((r) => r.url().startsWith(`${HUB}/api/oauth/callback?code=`)),
      page.locator('button[data-platform="x"]').click(),
    ]);
    assert.ok(!consent.url().startsWith(HUB), `consent at the fake: ${consent.url()}`);
    assert.equal((await callback.response())?.status(), 302);
    await noticeWith(page, 'Connected X').waitFor();
    const xCard = card(page, 'Fake X User');
    await xCard.waitFor();
    await xCard.locator('text=@fake_x_user').waitFor();
    await xCard.locator('.badge', { hasText: 'Active' }).waitFor();
    await xCard.locator('.synced', { hasText: /Never synced|Last synced/ }).waitFor();
    const img = xCard.locator('img.avatar');
    await img.waitFor();
    await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
    assert.ok(await xCard.evaluate((el) => el.classList.contains('highlight')), 'the new account is highlighted');
    assert.ok(!page.url().includes('?'), `query string cleaned: ${page.url()}`);
    const syncedTitle = await page
      .locator(`#account-${FB} .synced time, #account-${FB} .account-facts time`)
      .first()
      .getAttribute('title');
    assert.ok(syncedTitle && /\d{4}/.test(syncedTitle), `exact time in the tooltip: ${syncedTitle}`);
    log('connected X');

    // ---- disconnect Reddit: the dialog counts its scheduled post -----------------------------
    const reddit = page.locator(`#account-${REDDIT}`);
    await reddit.locator('button', { hasText: 'Disconnect' }).click();
    const dlg = page.locator('#dlg-disconnect');
    await dlg.waitFor();
    await dlg.locator('text=This cancels 1 scheduled post').waitFor();
    await page.waitForTimeout(150);
    await shot(page, 'dashboard-disconnect-dialog', { fullPage: false });
    await dlg.locator('button', { hasText: 'Disconnect' }).click();
    await reddit.waitFor({ state: 'detached' });
    await noticeWith(page, 'Disconnected').waitFor();
    const cancelled = await api('GET', `/api/posts?account_id=${REDDIT}&status=cancelled`);
    assert.equal(cancelled.items.length, 1, 'its scheduled post was cancelled');
    log('disconnected Reddit');
    await shot(page, 'dashboard-accounts');

    // ---- compose: limits as you type, field errors, schedule in the browser's time zone -------
    await page.locator('#nav a[data-view="compose"]').click();
    await page.locator('#view-compose').waitFor();
    const xAccount = await xCard.getAttribute('data-key');
    await page.locator(`#c-acc-${xAccount}`).check();
    await page.locator('#c-text').fill('日本 https://example.com/a/really/long/path/that/counts/as/23');
    await page.locator('[data-counter="x-text"] .limit-count', { hasText: '28 / 280' }).waitFor();
    await page.locator('#c-text').fill('a'.repeat(290));
    await page.locator('[data-counter="x-text"] .limit-over', { hasText: '10 over' }).waitFor();
    await page.locator('#c-limits-live', { hasText: 'over the limit' }).waitFor({ state: 'attached' });
    await page.locator('#c-submit').click();
    await page.locator('#compose-summary', { hasText: '10 over the limit' }).waitFor();
    await page.locator('#c-text-error').waitFor();
    // The hub's own 422, shown next to the field.
    await page.locator('#c-text').fill('Checking the media field');
    await page.locator('#c-media').fill('ftp://example.com/picture.jpg');
    await page.locator('#c-submit').click();
    await page.locator('#c-media-error', { hasText: 'http' }).waitFor();
    assert.equal(await page.locator('#c-media').getAttribute('aria-invalid'), 'true');
    log('limits and field errors shown');

    await page.locator('#c-media').fill('');
    await page.locator(`#c-acc-${FB}`).check();
    await page.locator('#c-title').fill('Spring launch');
    await page
      .locator('#c-text')
      .fill(
        'Our spring release is out: faster scheduling, calmer dashboards and a fresh look. Read the notes at https://example.com/blog/spring-release',
      );
    await page.locator('#c-when-later').check();
    const when = new Date(Date.now() + 2 * 3600 * 1000 + 15 * 60 * 1000);
    when.setSeconds(0, 0);
    await page.locator('#c-scheduled').fill(localInput(when, 'Europe/Berlin'));
    await page.locator('#c-tz', { hasText: 'Europe/Berlin' }).waitFor();
    assert.ok(await page.locator('#compose-summary').isHidden(), 'fixing the fields took their errors away');
    await shot(page, 'dashboard-compose');
    await page.locator('#c-submit', { hasText: 'Schedule post' }).click();
    await noticeWith(page, 'Scheduled 2 posts').waitFor();
    const queued = (await api('GET', '/api/posts?status=scheduled')).items.filter((p) => p.title === 'Spring launch');
    assert.equal(queued.length, 2, 'two posts scheduled');
    for (const p of queued)
      assert.equal(
        new Date(p.scheduled_at).getTime(),
        when.getTime(),
        `stored in UTC: ${p.scheduled_at} vs ${when.toISOString()}`,
      );
    log('scheduled two posts for', when.toISOString());

    await page.locator(`#c-acc-${FB}`).uncheck();
    await page.locator('#c-when-now').check();
    await page.locator('#c-text').fill('Hello from the nikara dashboard!');
    await page.locator('#c-submit', { hasText: 'Publish now' }).click();
    await noticeWith(page, 'Scheduled 1 post on X to publish now').waitFor();

    // ---- queue and history --------------------------------------------------------------------
    await page.locator('#nav a[data-view="posts"]').click();
    const published = page.locator('#history-list .post-row.status-published', {
      hasText: 'Hello from the nikara dashboard!',
    });
    await published.waitFor({ timeout: 20000 });
    const link = published.locator('a', { hasText: 'View on X' });
    assert.equal(await link.getAttribute('target'), '_blank');
    assert.match(await link.getAttribute('rel'), /noopener/);
    assert.match(await link.getAttribute('href'), /^https?:\/\//);
    const failed = page.locator('#history-list .post-row.status-failed');
    await failed.locator('text=Duplicate status message').waitFor();
    await failed.locator('text=Failed after 1 attempt').waitFor();
    await failed.locator('button', { hasText: 'Retry' }).waitFor();
    const queue = page.locator('#queue-list .post-row.status-scheduled', { hasText: 'Spring launch' });
    assert.equal(await queue.count(), 2);
    await queue
      .filter({ has: page.locator('.pmark-x') })
      .locator('button', { hasText: 'Cancel' })
      .click();
    await noticeWith(page, 'Cancelled the X post').waitFor();
    await page.waitForFunction(() => document.querySelectorAll('#queue-list .post-row.status-scheduled').length === 1);
    log('published, failed and cancelled posts shown');
    await shot(page, 'dashboard-queue-history');

    // ---- engagement -----------------------------------------------------------------------------
    await page.locator('#nav a[data-view="engagement"]').click();
    await page.locator('#e-chart .uplot canvas').waitFor();
    await page.locator('#e-tiles .tile-likes .tile-value').waitFor();
    await page.waitForFunction(
      () => Number(document.querySelector('#e-tiles .tile-likes .tile-value')?.textContent.replace(/\D/g, '')) > 0,
    );
    await page.locator('#e-posts tbody tr').first().waitFor();
    assert.ok((await page.locator('#e-posts tbody tr').count()) >= 2);
    await shot(page, 'dashboard-engagement');
    log('engagement shown');

    // ---- the mail's reconnect link, and an OAuth error -----------------------------------------
    await page.goto(`${HUB}/?reconnect=${REVOKED}`);
    await noticeWith(page, 'needs you to reconnect it').waitFor();
    await noticeWith(page, 'needs you to reconnect it').locator('button', { hasText: 'Reconnect Facebook' }).waitFor();
    assert.ok(
      await revoked.evaluate((el) => el.classList.contains('highlight') && document.activeElement === el),
      'the account is highlighted and focused',
    );
    assert.ok(!page.url().includes('reconnect='), `query string cleaned: ${page.url()}`);
    await page.goto(`${HUB}/?error=access_denied`);
    await noticeWith(page, 'The connection was cancelled').waitFor();
    log('reconnect link and error notice');

    // ---- phone width ------------------------------------------------------------------------------
    await page.setViewportSize({ width: 375, height: 812 });
    await page.goto(`${HUB}/#accounts`);
    await page.locator('.account-card').first().waitFor();
    for (const view of ['accounts', 'compose', 'posts', 'engagement']) {
      await page.goto(`${HUB}/#${view}`);
      await page.locator(`#view-${view}`).waitFor();
      await page.waitForTimeout(400);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      const wide = await page.evaluate(() =>
        Array.from(document.querySelectorAll('body *'))
          .filter(
            (el) =>
              el.getBoundingClientRect().right > window.innerWidth + 0.5 &&
              !el.parentElement.closest('.table-scroll, .tabs'),
          )
          .slice(0, 5)
          .map(
            (el) =>
              `${el.tagName.toLowerCase()}#${el.id}.${el.className} right=${Math.round(el.getBoundingClientRect().right)}`,
          ),
      );
      assert.ok(overflow <= 0, `${view} fits 375 px (overflows by ${overflow} px): ${wide.join(', ')}`);
      await shot(page, `dashboard-${view}-375`);
    }
    log('phone width');

    // ---- keyboard: tabs reach the nav, and sign out forgets the token --------------------------
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.goto(`${HUB}/#accounts`);
    await page.reload();
    await page.locator('.account-card').first().waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'skip-link');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'accounts-title');
    await page.keyboard.press('Tab');
    assert.equal(
      await page.evaluate(() => document.activeElement?.dataset.platform),
      'facebook',
      'the keyboard reaches the connect buttons',
    );
    await page.locator('#sign-out').click();
    await page.locator('#view-signin').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('nikara.token')), null);
    // Paste the token instead.
    await page.locator('#signin-token').fill('not a token');
    await page.locator('#signin-submit').click();
    await page.locator('#signin-error', { hasText: 'JWT' }).waitFor();
    await page.locator('#signin-token').fill(TOKEN);
    await page.locator('#signin-submit').click();
    await page.locator('#nav').waitFor();
    log('sign out and sign in by pasting');

    assert.deepEqual(problems, [], `console errors:\n${problems.join('\n')}`);
    log('no console errors, no CSP violations');
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().then(
  () => log('dashboard: all checks passed'),
  (e) => {
    console.error(e?.stack || e);
    if (problems.length) console.error(`console problems so far:\n${problems.join('\n')}`);
    process.exit(1);
  },
);
