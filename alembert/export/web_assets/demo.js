// The demo page of an `alembert export --web` folder: transformers.js runs the folder's own ONNX
// graph with the vendored onnxruntime-web WebAssembly build. Nothing is fetched from anywhere but
// this folder: remote models are off and the wasm paths point at ./vendor/ (no CDN).
//
// Query parameters: dtype=q8 (onnx/model_quantized.onnx, the default) or fp32 (onnx/model.onnx);
// threads=N or threads=max (WASM threads; more than 1 needs a cross-origin-isolated page, which
// `alembert serve-web` provides). window.alembert exposes classify() and bench() to a driver
// (the headless-browser test), and the page writes bench results into <script id="results">.
import { env, pipeline } from "./vendor/transformers.min.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const manifest = await (await fetch("alembert_web.json")).json();

function wantedThreads() {
  const asked = params.get("threads") || "max";
  const max = self.crossOriginIsolated ? navigator.hardwareConcurrency || 1 : 1;  // threads need SharedArrayBuffer
  return asked === "max" ? max : Math.max(1, Math.min(max, parseInt(asked, 10) || 1));
}

// The folder is the model: transformers.js reads <localModelPath>/<model id>/config.json etc.
const folder = location.pathname.replace(/[^/]*$/, "");          // "/name/" (the page's folder)
const modelId = folder.replace(/\/$/, "").split("/").pop();        // "name"
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = folder.slice(0, folder.length - modelId.length - 1) || "/";
env.useBrowserCache = false;  // every load reads the files served now, not an older export
env.useWasmCache = false;
const vendor = new URL("vendor/", location.href).href;
env.backends.onnx.wasm.wasmPaths = { mjs: vendor + manifest.runtime.mjs, wasm: vendor + manifest.runtime.wasm };
env.backends.onnx.wasm.numThreads = wantedThreads();

const dtype = params.get("dtype") || "q8";
const labels = manifest.labels;

function show(text, error = false) {
  $("status").textContent = text;
  if (error) $("status").dataset.error = "1";
}

let classifier;
const ready = (async () => {
  const t0 = performance.now();
  classifier = await pipeline(manifest.task, modelId, { dtype, device: "wasm" });
  const loadMs = performance.now() - t0;
  $("title").textContent = `${manifest.name}: ${manifest.task}`;
  $("footer").textContent =
    `transformers.js ${manifest.versions["@huggingface/transformers"]}, onnxruntime-web ${manifest.versions["onnxruntime-web"]} ` +
    `(WebAssembly, ${env.backends.onnx.wasm.numThreads} thread${env.backends.onnx.wasm.numThreads > 1 ? "s" : ""}), ` +
    `${dtype === "q8" ? "int8" : "fp32"} graph ${(manifest.files[dtype].bytes / 1e6).toFixed(1)} MB, loaded in ${loadMs.toFixed(0)} ms`;
  return { loadMs, threads: env.backends.onnx.wasm.numThreads, dtype, crossOriginIsolated: self.crossOriginIsolated };
})();

// One sentence: the probability of every label (in id order) and the milliseconds the pipeline
// took (tokenisation, the ONNX run and the softmax: what a visitor waits for).
async function classify(text) {
  await ready;
  const t0 = performance.now();
  const out = await classifier(text, { top_k: null });
  const ms = performance.now() - t0;
  const byLabel = Object.fromEntries(out.map((o) => [o.label, o.score]));
  const probs = labels.map((l) => byLabel[l]);
  const best = probs.indexOf(Math.max(...probs));
  return { label: labels[best], probs, ms };
}

// Per-sentence latency: `warmup` untimed calls, then each sentence `repeats` times through the
// pipeline (ms) and through the model alone (model_ms). Token ids come from the same tokenizer.
async function bench(sentences, { repeats = 3, warmup = 5 } = {}) {
  const info = await ready;
  for (let i = 0; i < warmup; i++) await classify(sentences[i % sentences.length]);
  const rows = [];
  for (const text of sentences) {
    const runs = [], modelRuns = [];
    let res;
    for (let r = 0; r < repeats; r++) { res = await classify(text); runs.push(res.ms); }
    const enc = await classifier.tokenizer(text, { truncation: true });
    for (let r = 0; r < repeats; r++) {  // the ONNX run alone, the rest being tokenisation and glue
      const t0 = performance.now();
      await classifier.model(enc);
      modelRuns.push(performance.now() - t0);
    }
    rows.push({ text, label: res.label, probs: res.probs, ms: runs, model_ms: modelRuns, input_ids: Array.from(enc.input_ids.data, Number) });
  }
  const result = { ...info, userAgent: navigator.userAgent, hardwareConcurrency: navigator.hardwareConcurrency, rows };
  $("results").textContent = JSON.stringify(result);
  document.body.dataset.state = "done";
  return result;
}

async function runBox() {
  $("run").disabled = true;
  try {
    const { label, probs, ms } = await classify($("text").value);
    const p = Math.max(...probs);
    $("label").textContent = label;
    $("prob").textContent = `probability ${p.toFixed(3)}`;
    $("probbar").style.width = `${(100 * p).toFixed(1)}%`;
    $("timing").textContent = `${ms.toFixed(1)} ms in this browser`;
  } finally {
    $("run").disabled = false;
  }
}

window.alembert = { ready, classify, bench };
ready.then(async (info) => {
  await classify($("text").value);  // the first run initialises the kernels: show a warm one
  show(`ready: ${info.threads} WASM thread${info.threads > 1 ? "s" : ""}, model loaded in ${info.loadMs.toFixed(0)} ms`);
  $("run").disabled = false;
  $("run").addEventListener("click", runBox);
  await runBox();
  document.body.dataset.state = document.body.dataset.state === "done" ? "done" : "ready";
}).catch((err) => {
  show(`error: ${err.message || err}`, true);
  document.body.dataset.state = "error";
  document.body.dataset.error = String(err.message || err);
});
