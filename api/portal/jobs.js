// ecert bulk job page: upload a records file (POST /v1/jobs), follow it by Server-Sent Events,
// list the records that failed with their field-named errors, offer the ZIP when done.
// Every value from the server is written with textContent (never innerHTML).
"use strict";

(function () {
  const T = {  // key -> [zh, en]
    title: ["批量签发任务", "Bulk issuing jobs"],
    subtitle: ["上传记录文件，查看签发进度，下载签章后的证照", "Upload a records file, follow the progress, download the sealed licences"],
    formHeading: ["新建任务", "New job"],
    tokenLabel: ["API 令牌（issue 权限）", "API token (issue scope)"],
    fileLabel: ["记录文件（.jsonl 或 .csv，照片以 base64 内嵌）", "Records file (.jsonl or .csv, photos inline as base64)"],
    start: ["开始签发", "Start"],
    jobHeading: ["任务", "Job"],
    download: ["下载结果（ZIP：证照 OFD 与清单）", "Download the result (ZIP: licence OFDs and manifest)"],
    failedHeading: ["未签发的记录", "Records not issued"],
    colLine: ["行号", "Line"], colField: ["字段", "Field"], colMessage: ["问题", "Problem"],
    back: ["返回证照验证", "Back to verification"],
    howHeading: ["说明", "How it works"],
    how1: ["每行（CSV 为每一行数据）一条证照记录，字段与单张签发相同。有问题的记录不会中断任务，会在下方按字段列出。",
           "One licence record per line (per data row in CSV), with the same fields as single issuing. A bad record never stops the job; it is listed below by field."],
    how2: ["任务在服务器上运行：关闭本页不影响签发；服务重启后会从中断处继续，不会重复签发。",
           "The job runs on the server: closing this page does not stop it, and after a restart it resumes where it stopped, signing nothing twice."],
    langButton: ["English", "中文"],
    uploading: ["正在上传……", "Uploading…"],
    noFile: ["请选择记录文件。", "Please choose a records file."],
    noToken: ["请填写 API 令牌。", "Please enter an API token."],
    errorPrefix: ["请求失败：", "Request failed: "],
    networkError: ["无法连接服务，请稍后重试。", "Cannot reach the service; please retry."],
    counts: ["已签发 {done} · 失败 {failed} · 共 {total}", "issued {done} · failed {failed} · of {total}"],
    rate: ["{rate} 条/秒，预计还需 {eta} 秒", "{rate} records/s, about {eta} s left"],
    "state.queued": ["排队中", "queued"], "state.running": ["签发中", "running"],
    "state.done": ["已完成", "done"], "state.failed": ["已中断", "stopped"],
  };

  let lang = "zh";
  let current = null;   // the last job body shown
  let events = null;    // the EventSource of the job followed
  let resultUrl = null; // blob: URL of the downloaded ZIP

  const $ = (id) => document.getElementById(id);
  const t = (key) => T[key][lang === "en" ? 1 : 0];
  const text = (el, value) => { el.textContent = value == null ? "" : String(value); return el; };
  const make = (tag, value) => text(document.createElement(tag), value);
  const pick = (zh, en) => (lang === "en" ? (en || zh) : (zh || en));
  const fill = (s, vals) => s.replace(/\{(\w+)\}/g, (_, k) => (vals[k] == null ? "?" : String(vals[k])));

  function token() { return $("token").value.trim(); }
  function auth() { return { Authorization: "Bearer " + token() }; }

  function setStatus(message, isError) {
    text($("status"), message);
    $("status").classList.toggle("error", !!isError);
  }

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    document.querySelectorAll("[data-i18n]").forEach((el) => text(el, t(el.dataset.i18n)));
    text($("lang"), t("langButton"));
    if (current) show(current);
  }

  async function errorText(resp) {
    try {
      const body = await resp.json();
      return pick(body.message_zh, body.message_en) || resp.statusText;
    } catch (e) {
      return resp.status + " " + resp.statusText;
    }
  }

  function show(job) {
    current = job;
    $("job").hidden = false;
    text($("job-id"), job.job_id);
    const state = ["queued", "running", "done", "failed"].includes(job.state) ? job.state : "queued";
    text($("job-state"), t("state." + state));
    $("job-state").dataset.state = state;
    const bar = $("bar");
    const total = Number(job.total) > 0 ? Number(job.total) : 1;
    bar.max = total;
    bar.value = Math.min(Number(job.processed) || 0, total);
    let line = fill(t("counts"), { done: job.done, failed: job.failed, total: job.total });
    if (state === "running" && Number(job.rate) > 0) {
      line += " · " + fill(t("rate"), { rate: Math.round(job.rate), eta: job.eta_s == null ? "?" : Math.round(job.eta_s) });
    }
    text($("counts"), line);
    const err = job.error && typeof job.error === "object" ? pick(job.error.message_zh, job.error.message_en) : "";
    text($("job-error"), err);
    $("job-error").hidden = !err;
    document.body.dataset.state = state;
  }

  function follow(job) {
    if (events) events.close();
    show(job);
    if (job.state === "done" || job.state === "failed") { finish(job); return; }
    events = new EventSource(job.links.events);
    events.addEventListener("progress", (ev) => show(JSON.parse(ev.data)));
    events.addEventListener("end", (ev) => {
      events.close();
      events = null;
      const last = JSON.parse(ev.data);
      show(last);
      finish(last);
    });
  }

  async function finish(job) {
    if (job.state !== "done") return;
    try {
      const resp = await fetch(job.links.manifest + "?failed=1", { headers: auth(), cache: "no-store" });
      if (resp.ok) showFailures(await resp.text());
      const zip = await fetch(job.links.result, { headers: auth(), cache: "no-store" });
      if (zip.ok) {
        if (resultUrl) URL.revokeObjectURL(resultUrl);
        resultUrl = URL.createObjectURL(await zip.blob());
        const a = $("download");
        a.href = resultUrl;
        a.download = "ecert-" + job.job_id + ".zip";
        a.hidden = false;
      } else {
        setStatus(t("errorPrefix") + (await errorText(zip)), true);
      }
    } catch (e) {
      setStatus(t("networkError"), true);
    }
    document.body.dataset.finished = "1";
  }

  function showFailures(body) {
    const tbody = $("failed");
    tbody.replaceChildren();
    for (const raw of body.split("\n")) {
      if (!raw.trim()) continue;
      let item;
      try { item = JSON.parse(raw); } catch (e) { continue; }
      const errors = Array.isArray(item.errors) ? item.errors : [];
      for (const err of errors) {
        if (!err) continue;
        const tr = document.createElement("tr");
        tr.className = "fail";
        tr.dataset.line = String(item.line);
        tr.dataset.field = String(err.field);
        tr.append(make("td", item.line), make("td", err.field), make("td", pick(err.message_zh, err.message_en)));
        tbody.append(tr);
      }
    }
    $("failed-box").hidden = !tbody.children.length;
  }

  async function start(ev) {
    ev.preventDefault();
    const file = $("records").files[0];
    if (!token()) { setStatus(t("noToken"), true); return; }
    if (!file) { setStatus(t("noFile"), true); return; }
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    $("start").disabled = true;
    $("download").hidden = true;
    $("failed-box").hidden = true;
    delete document.body.dataset.finished;
    setStatus(t("uploading"), false);
    try {
      const resp = await fetch("/v1/jobs?format=" + encodeURIComponent(ext), {
        method: "POST", body: file, headers: Object.assign({ "Content-Type": "application/octet-stream" }, auth()),
      });
      if (!resp.ok) { setStatus(t("errorPrefix") + (await errorText(resp)), true); return; }
      const job = await resp.json();
      setStatus("", false);
      history.replaceState(null, "", "#job=" + encodeURIComponent(job.job_id));
      follow(job);
    } catch (e) {
      setStatus(t("networkError"), true);
    } finally {
      $("start").disabled = false;
    }
  }

  async function reopen() {  // /portal/jobs.html#job=<id>: follow that job again (needs the token)
    const m = /^#job=([0-9A-Za-z_-]{1,64})$/.exec(location.hash);
    if (!m || !token()) return;
    try {
      const resp = await fetch("/v1/jobs/" + m[1], { headers: auth(), cache: "no-store" });
      if (resp.ok) follow(await resp.json());
      else setStatus(t("errorPrefix") + (await errorText(resp)), true);
    } catch (e) {
      setStatus(t("networkError"), true);
    }
  }

  function init() {
    const saved = (() => { try { return localStorage.getItem("ecert-lang"); } catch (e) { return null; } })();
    if (saved === "en" || saved === "zh") lang = saved;
    try { $("token").value = sessionStorage.getItem("ecert-token") || ""; } catch (e) { /* private mode */ }
    applyLanguage();
    $("bar").style.width = "100%";  // CSSOM, not an inline style attribute: the CSP allows it
    $("token").style.width = "100%";
    $("lang").addEventListener("click", () => {
      lang = lang === "zh" ? "en" : "zh";
      try { localStorage.setItem("ecert-lang", lang); } catch (e) { /* private mode */ }
      applyLanguage();
    });
    $("token").addEventListener("change", () => {
      try { sessionStorage.setItem("ecert-token", token()); } catch (e) { /* private mode */ }  // this tab only
    });
    $("job-form").addEventListener("submit", start);
    reopen();
    document.body.dataset.ready = "1";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
