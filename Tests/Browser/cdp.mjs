// Drives headless Chromium through the DevTools protocol, as a person uses a page: opens it,
// waits for what it shows, types into fields, clicks, reads, takes screenshots.
//
//   node --experimental-websocket Tests/Browser/cdp.mjs steps.json
//
// steps.json: [{"viewport": [1280, 800]}, {"go": URL}, {"wait": SELECTOR, "text": TEXT?},
// {"type": [SELECTOR, TEXT]}, {"select": [SELECTOR, VALUE]}, {"click": SELECTOR},
// {"eval": JS}, {"screenshot": PATH}, {"sleep": MS}]. Dialogs (confirm) are accepted.
// Prints one JSON object: {"ok": true, "results": [...]} (what each eval returned), or
// {"ok": false, "step": N, "error": ..., "url", "pageErrors", "dom": <the page's text>} at the
// first failure.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const steps = JSON.parse(readFileSync(process.argv[2], "utf8"));
const profile = mkdtempSync(join(tmpdir(), "gedge-cdp-"));
const chrome = spawn("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
  `--user-data-dir=${profile}`, "--remote-debugging-port=0", "about:blank"], { stdio: "ignore" });
const sleep = ms => new Promise(r => setTimeout(r, ms));
const done = (out, code) => {
  process.stdout.write(JSON.stringify(out) + "\n");
  try { chrome.kill("SIGKILL"); } catch {}
  try { rmSync(profile, { recursive: true, force: true }); } catch {}
  process.exit(code);
};
setTimeout(() => done({ ok: false, error: "the whole run took longer than 120 s" }, 1), 120000).unref();

let port;
for (let i = 0; i < 200 && !port; i++) {
  const f = join(profile, "DevToolsActivePort");
  if (existsSync(f)) port = readFileSync(f, "utf8").split("\n")[0];
  else await sleep(100);
}
if (!port) done({ ok: false, error: "Chromium did not open its DevTools port" }, 1);
let target;
for (let i = 0; i < 50 && !target; i++) {
  try { target = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()).find(t => t.type === "page"); } catch { await sleep(100); }
}
const ws = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((ok, bad) => { ws.onopen = ok; ws.onerror = bad; });
let seq = 0;
const errors = [];
const pending = new Map();
ws.onmessage = m => {
  const msg = JSON.parse(m.data);
  if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
  if (msg.method === "Page.javascriptDialogOpening") send("Page.handleJavaScriptDialog", { accept: true });
  if (msg.method === "Runtime.exceptionThrown") errors.push(msg.params.exceptionDetails?.exception?.description || msg.params.exceptionDetails?.text);
  if (msg.method === "Runtime.consoleAPICalled" && msg.params.type === "error") errors.push(msg.params.args.map(a => a.value ?? a.description).join(" "));
};
function send(method, params = {}) {
  const id = ++seq;
  ws.send(JSON.stringify({ id, method, params }));
  return new Promise((ok, bad) => pending.set(id, msg => msg.error ? bad(new Error(`${method}: ${msg.error.message}`)) : ok(msg.result)));
}
async function evaluate(expression) {
  const r = await send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true });
  if (r.exceptionDetails) throw new Error(r.exceptionDetails.exception?.description || r.exceptionDetails.text);
  return r.result.value;
}
async function waitFor(selector, text, timeout = 20000) {
  const end = Date.now() + timeout;
  const probe = `(() => { const e = document.querySelector(${JSON.stringify(selector)}); return !!e && ${text == null ? "true" : `e.textContent.includes(${JSON.stringify(text)})`}; })()`;
  while (Date.now() < end) { if (await evaluate(probe)) return; await sleep(100); }
  throw new Error(`no ${selector}${text == null ? "" : ` holding "${text}"`} after ${timeout} ms`);
}

await send("Page.enable");
await send("Runtime.enable");
const results = [];
for (const [i, step] of steps.entries()) {
  try {
    if (step.viewport) await send("Emulation.setDeviceMetricsOverride", { width: step.viewport[0], height: step.viewport[1], deviceScaleFactor: 1, mobile: false });
    else if (step.go) { await send("Page.navigate", { url: step.go }); await sleep(300); }
    else if (step.wait) await waitFor(step.wait, step.text, step.timeout);
    else if (step.type) {
      await waitFor(step.type[0]);
      await evaluate(`(() => { const e = document.querySelector(${JSON.stringify(step.type[0])}); e.focus(); e.value = ${JSON.stringify(step.type[1])};
        e.dispatchEvent(new Event("input", { bubbles: true })); e.dispatchEvent(new Event("change", { bubbles: true })); e.blur(); })()`);
    } else if (step.select) {
      await waitFor(step.select[0]);
      await evaluate(`(() => { const e = document.querySelector(${JSON.stringify(step.select[0])}); e.value = ${JSON.stringify(step.select[1])};
        e.dispatchEvent(new Event("change", { bubbles: true })); })()`);
    } else if (step.click) { await waitFor(step.click); await evaluate(`document.querySelector(${JSON.stringify(step.click)}).click()`); await sleep(200); }
    else if (step.eval) results.push(await evaluate(step.eval));
    else if (step.screenshot) {
      const m = await send("Page.getLayoutMetrics");
      const shot = await send("Page.captureScreenshot", { format: "png", captureBeyondViewport: true,
        clip: { x: 0, y: 0, width: m.cssContentSize.width, height: Math.min(m.cssContentSize.height, 4000), scale: 1 } });
      writeFileSync(step.screenshot, Buffer.from(shot.data, "base64"));
    } else if (step.sleep) await sleep(step.sleep);
  } catch (e) {
    let dom = "", url = "";
    try { dom = await evaluate("document.body.innerText"); url = await evaluate("location.href"); } catch {}
    done({ ok: false, step: i, error: String(e.message || e), url, pageErrors: errors, dom: dom.slice(0, 4000) }, 1);
  }
}
done({ ok: true, results }, 0);
