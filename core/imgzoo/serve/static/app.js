// The page of `imgzoo serve`: pick a task, give it a picture (a file, a drop or a drawing),
// show the input and the result side by side, and offer the result for download.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { tasks: [], image: null, inputs: {}, resultUrl: null };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// The task's warnings about the picture (X-Imgzoo-Warning headers, joined by ", " by fetch);
// none hides the note.
function showWarnings(response) {
  const header = response ? response.headers.get("X-Imgzoo-Warning") : null;
  $("warnings").textContent = header ? `warning: ${header}` : "";
  $("warnings").hidden = !header;
}

// Forget the last result: an error or a new run must not leave an old picture on screen.
function clearResult() {
  $("output").removeAttribute("src");
  $("output").removeAttribute("data-ready");
  $("download").hidden = true;
  $("download").removeAttribute("href");
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = null;
}

function currentTask() {
  return state.tasks.find((task) => task.name === $("task").value);
}

function showTask() {
  const task = currentTask();
  $("description").textContent = task ? task.description : "";
  const box = $("inputs");
  box.replaceChildren();
  state.inputs = {};
  for (const input of task ? task.inputs : []) {
    const label = document.createElement("label");
    // A mask's picker says how it is read: any nonzero pixel is 1.
    const kind = input.kind === "mask" ? " (mask: nonzero pixels are 1)" : "";
    label.textContent = `${input.name}${kind}${input.required ? "" : " (optional)"}: `;
    label.title = input.description;
    const picker = document.createElement("input");
    picker.type = "file";
    picker.accept = "image/*";
    picker.dataset.input = input.name;
    picker.addEventListener("change", () => { state.inputs[input.name] = picker.files[0]; });
    label.append(picker);
    box.append(label);
  }
}

function useImage(blob) {
  state.image = blob;
  $("input-preview").src = URL.createObjectURL(blob);
  $("run").disabled = false;
  setStatus("ready: press Run");
}

async function run() {
  const task = currentTask();
  if (!task || !state.image) return;
  const form = new FormData();
  form.append("image", state.image, "image.png");
  for (const [name, file] of Object.entries(state.inputs)) {
    if (file) form.append(name, file, `${name}.png`);
  }
  $("run").disabled = true;
  clearResult();
  setStatus(`running ${task.name}…`);
  showWarnings(null);
  try {
    const response = await fetch(`/v1/tasks/${encodeURIComponent(task.name)}`, { method: "POST", body: form });
    if (!response.ok) {
      const body = await response.json().catch(() => ({ error: response.statusText }));
      setStatus(`error ${response.status}: ${body.error}`, true);
      return;
    }
    const blob = await response.blob();
    showWarnings(response);
    state.resultUrl = URL.createObjectURL(blob);
    const isMap = task.output_kind === "map";
    const download = $("download");
    download.href = state.resultUrl;
    download.download = `${task.name}-result.${isMap ? "npy" : "png"}`;
    download.hidden = false;
    if (isMap) {
      $("output").removeAttribute("src");
      setStatus("the result is a float map: download it as .npy");
    } else {
      $("output").src = state.resultUrl;
      setStatus("done");
    }
  } catch (error) {
    setStatus(`the server could not be reached: ${error}`, true);
  } finally {
    $("run").disabled = false;
  }
}

function setUpDrawing() {
  const canvas = $("sketch");
  const pen = canvas.getContext("2d");
  const clear = () => { pen.fillStyle = "#fff"; pen.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  pen.strokeStyle = "#000";
  pen.lineWidth = 2;
  pen.lineCap = "round";
  let drawing = false;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (event) => { drawing = true; pen.beginPath(); pen.moveTo(...at(event)); });
  canvas.addEventListener("pointermove", (event) => { if (drawing) { pen.lineTo(...at(event)); pen.stroke(); } });
  window.addEventListener("pointerup", () => { drawing = false; });
  $("clear").addEventListener("click", clear);
  $("use-drawing").addEventListener("click", () => canvas.toBlob(useImage, "image/png"));
}

function setUpDropping() {
  const zone = $("drop");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) useImage(event.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", () => { if ($("file").files.length) useImage($("file").files[0]); });
}

async function start() {
  setUpDrawing();
  setUpDropping();
  $("run").addEventListener("click", run);
  $("task").addEventListener("change", showTask);
  $("output").addEventListener("load", () => { $("output").dataset.ready = "1"; });
  const response = await fetch("/v1/tasks");
  state.tasks = await response.json();
  for (const task of state.tasks) {
    const option = document.createElement("option");
    option.value = option.textContent = task.name;
    $("task").append(option);
  }
  const wanted = new URLSearchParams(location.search).get("task");
  if (wanted) $("task").value = wanted;
  showTask();
  setStatus(state.tasks.length ? "pick or draw an image" : "this server serves no tasks", !state.tasks.length);
}

start();
