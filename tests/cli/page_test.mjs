// serve's page (GET /) in a real headless Chromium, driven by playwright-core: the page names the
// model's classes, a text typed and sent with the button comes back as one bar a class, in the
// model's class order, each as wide as its probability, the predicted class marked; a blank text
// shows the server's error and no bars; nothing is fetched from anywhere but the server, and the
// page logs no error. Saves a screenshot of the answer.
//
// usage: node page_test.mjs URL SCREENSHOT.png NODE_DIR CHROMIUM TEXT
//   NODE_DIR: the folder whose node_modules holds playwright-core
import { createRequire } from "node:module";

const [url, screenshot, nodeDir, chromiumPath, text] = process.argv.slice(2);
const { chromium } = createRequire(nodeDir + "/")("playwright-core");

const failures = [];
const check = (ok, message) => {
  if (!ok) failures.push(message);
};

const health = await (await fetch(url + "/healthz")).json();
const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 860, height: 560 } });
  const elsewhere = [];
  const errors = [];
  page.on("request", (request) => {
    if (!request.url().startsWith(url + "/")) elsewhere.push(request.url());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().includes("422")) errors.push(message.text());
  });

  await page.goto(url + "/");
  await page.waitForFunction(() => document.getElementById("model").textContent.includes("classes"));
  const model = await page.textContent("#model");
  check(health.classes.every((name) => model.includes(name)), `the page does not name the classes: ${model}`);

  // A text: one bar a class, as wide as its probability.
  await page.fill("#text", text);
  const answered = page.waitForResponse((response) => response.url().endsWith("/v1/classify"));
  await page.click("#classify");
  const answer = await (await answered).json();
  await page.waitForSelector(".bar");
  const bars = await page.$$eval(".bar", (elements) =>
    elements.map((bar) => ({
      name: bar.dataset.class,
      width: bar.getBoundingClientRect().width,
      track: bar.parentElement.getBoundingClientRect().width,
      predicted: bar.closest(".row").classList.contains("predicted"),
    })),
  );
  const names = Object.keys(answer.probabilities);
  check(bars.length === health.classes.length, `${bars.length} bars for ${health.classes.length} classes`);
  check(JSON.stringify(bars.map((bar) => bar.name)) === JSON.stringify(health.classes),
        `bars ${bars.map((bar) => bar.name)} not in the class order ${health.classes}`);
  check(JSON.stringify(names) === JSON.stringify(health.classes), `answer classes ${names}`);
  for (const bar of bars) {
    const probability = answer.probabilities[bar.name];
    // Layout rounds widths to device pixels (1/64 px in Chromium): half a pixel is generous.
    check(Math.abs(bar.width - probability * bar.track) <= 0.5,
          `bar ${bar.name}: ${bar.width} px of ${bar.track}, probability ${probability}`);
    check(bar.predicted === (bar.name === answer.predicted), `bar ${bar.name}: predicted mark wrong`);
  }
  check((await page.textContent("#status")).includes(answer.predicted), "the status does not name the prediction");
  await page.screenshot({ path: screenshot, fullPage: true });

  // A blank text: the server's error, no bars.
  await page.fill("#text", "   ");
  await page.click("#classify");
  await page.waitForFunction(() => document.getElementById("status").className === "error");
  check((await page.textContent("#status")).includes("empty text"), "a blank text: no error shown");
  check((await page.$$(".bar")).length === 0, "a blank text: bars left on the page");

  check(elsewhere.length === 0, `requests to elsewhere: ${elsewhere}`);
  check(errors.length === 0, `errors on the page: ${errors}`);
  console.log(`page: ${bars.length} bars (${bars.map((bar) => `${bar.name} ${bar.width.toFixed(1)}px`).join(", ")}), ` +
              `predicted ${answer.predicted}`);
} finally {
  await browser.close();
}
if (failures.length) {
  for (const failure of failures) console.error("FAIL: " + failure);
  process.exit(1);
}
