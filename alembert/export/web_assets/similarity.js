// The demo page of an `alembert export --web` folder for a sentence-embedding model: two text
// boxes, the cosine similarity of their embeddings, the time the browser took. Nothing is fetched
// from anywhere but this folder (remote models off, wasm paths at ./vendor/, no CDN).
//
// Why AutoTokenizer + AutoModel and not pipeline("feature-extraction"): the folder's graph already
// pools, applies the Dense layers and normalises, and its one output is `sentence_embedding`.
// transformers.js 4.3.2's feature-extraction pipeline reads only
// `last_hidden_state ?? logits ?? token_embeddings` from the model's outputs (then pools itself), so
// it would find no tensor in this graph's output. AutoModel loads the same onnx/model*.onnx file and
// returns every graph output by name, and AutoTokenizer is the pipeline's own tokenizer
// (tokenizer.json), so the page runs exactly the graph Python runs, with no pooling re-done in JS.
//
// Query parameters: dtype=q8 (onnx/model_quantized.onnx, the default) or fp32 (onnx/model.onnx);
// threads=N or threads=max. window.alembert exposes embed(), similarity() and bench() to a driver
// (the headless-browser test), and bench writes its results into <script id="results">.
import { AutoModel, AutoTokenizer, env } from "./vendor/transformers.min.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const manifest = await (await fetch("alembert_web.json")).json();

function wantedThreads() {
  const asked = params.get("threads") || "max";
  const max = self.crossOriginIsolated ? navigator.hardwareConcurrency || 1 : 1;  // threads need SharedArrayBuffer
  return asked === "max" ? max : Math.max(1, Math.min(max, parseInt(asked, 10) || 1));
}

const folder = location.pathname.replace(/[^/]*$/, "");          // "/name/" (the page's folder)
const modelId = folder.replace(/\/$/, "").split("/").pop();        // "name"
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = folder.slice(0, folder.length - modelId.length - 1) || "/";
env.useBrowserCache = false;
env.useWasmCache = false;
const vendor = new URL("vendor/", location.href).href;
env.backends.onnx.wasm.wasmPaths = { mjs: vendor + manifest.runtime.mjs, wasm: vendor + manifest.runtime.wasm };
env.backends.onnx.wasm.numThreads = wantedThreads();

const dtype = params.get("dtype") || "q8";
const output = manifest.output;  // "sentence_embedding"

function show(text, error = false) {
  $("status").textContent = text;
  if (error) $("status").dataset.error = "1";
}

let tokenizer, model;
const ready = (async () => {
  const t0 = performance.now();
  tokenizer = await AutoTokenizer.from_pretrained(modelId);
  model = await AutoModel.from_pretrained(modelId, { dtype, device: "wasm" });
  const loadMs = performance.now() - t0;
  $("title").textContent = `${manifest.name}: sentence similarity`;
  $("footer").textContent =
    `transformers.js ${manifest.versions["@huggingface/transformers"]}, onnxruntime-web ${manifest.versions["onnxruntime-web"]} ` +
    `(WebAssembly, ${env.backends.onnx.wasm.numThreads} thread${env.backends.onnx.wasm.numThreads > 1 ? "s" : ""}), ` +
    `${dtype === "q8" ? "int8" : "fp32"} graph ${(manifest.files[dtype].bytes / 1e6).toFixed(1)} MB, ` +
    `${manifest.pooling} pooling, dim ${manifest.dim}, loaded in ${loadMs.toFixed(0)} ms`;
  return { loadMs, threads: env.backends.onnx.wasm.numThreads, dtype, crossOriginIsolated: self.crossOriginIsolated };
})();

// One sentence: its embedding (the graph's output, already pooled/normalised) and the ms of
// tokenisation + ONNX run.
async function embed(text) {
  await ready;
  const t0 = performance.now();
  const enc = tokenizer(text, { truncation: true });
  const out = await model(enc);
  const ms = performance.now() - t0;
  return { embedding: Array.from(out[output].data), ms, input_ids: Array.from(enc.input_ids.data, Number) };
}

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return dot / Math.max(Math.sqrt(na) * Math.sqrt(nb), 1e-12);
}

async function similarity(a, b) {
  const [ea, eb] = [await embed(a), await embed(b)];
  return { cosine: cosine(ea.embedding, eb.embedding), ms: ea.ms + eb.ms };
}

// Sentence pairs [[a, b], ...]: per sentence `repeats` timed embed() calls (ms) and `repeats` runs
// of the model alone (model_ms), after `warmup` untimed calls; per pair the cosine.
async function bench(pairs, { repeats = 3, warmup = 5 } = {}) {
  const info = await ready;
  const flat = pairs.flat();
  for (let i = 0; i < warmup; i++) await embed(flat[i % flat.length]);
  const sentences = [], rows = [];
  for (const pair of pairs) {
    const embs = [];
    for (const text of pair) {
      const runs = [], modelRuns = [];
      let res;
      for (let r = 0; r < repeats; r++) { res = await embed(text); runs.push(res.ms); }
      const enc = tokenizer(text, { truncation: true });
      for (let r = 0; r < repeats; r++) {
        const t0 = performance.now();
        await model(enc);
        modelRuns.push(performance.now() - t0);
      }
      embs.push(res.embedding);
      sentences.push({ text, ms: runs, model_ms: modelRuns, input_ids: res.input_ids, embedding: res.embedding });
    }
    rows.push({ texts: pair, cosine: cosine(embs[0], embs[1]) });
  }
  const result = { ...info, userAgent: navigator.userAgent, hardwareConcurrency: navigator.hardwareConcurrency, rows, sentences };
  $("results").textContent = JSON.stringify(result);
  document.body.dataset.state = "done";
  return result;
}

async function runBoxes() {
  $("run").disabled = true;
  try {
    const { cosine: c, ms } = await similarity($("text-a").value, $("text-b").value);
    $("cosine").textContent = c.toFixed(3);
    $("cosbar").style.width = `${(100 * Math.max(0, c)).toFixed(1)}%`;
    $("timing").textContent = `${ms.toFixed(1)} ms in this browser (two sentences)`;
  } finally {
    $("run").disabled = false;
  }
}

window.alembert = { ready, embed, similarity, bench };
ready.then(async (info) => {
  await embed($("text-a").value);  // the first run initialises the kernels: show a warm one
  show(`ready: ${info.threads} WASM thread${info.threads > 1 ? "s" : ""}, model loaded in ${info.loadMs.toFixed(0)} ms`);
  $("run").disabled = false;
  $("run").addEventListener("click", runBoxes);
  await runBoxes();
  document.body.dataset.state = document.body.dataset.state === "done" ? "done" : "ready";
}).catch((err) => {
  show(`error: ${err.message || err}`, true);
  document.body.dataset.state = "error";
  document.body.dataset.error = String(err.message || err);
});
