// ecert verification portal. Every value from the server or the URL is written with
// textContent (never innerHTML): a forged document may carry markup in any field.
"use strict";

(function () {
  const T = {  // message key -> [zh, en]: one line per message, so the two never drift apart
    title: ["特种作业操作证 电子证照验证", "Special Operation Certificate — Verification"],
    subtitle: ["核验电子证照的签章、证书与登记状态", "Checks the seal, certificates and registry status of an electronic licence"],
    fileHeading: ["上传证照文件（OFD）", "Upload a licence file (OFD)"],
    dropMain: ["将 .ofd 文件拖到此处，或点击选择文件", "Drop an .ofd file here, or click to choose one"],
    qrHeading: ["粘贴或扫描二维码内容", "Paste or scan the QR code text"],
    qrPlaceholder: ["例如 https://…/v#EC1:…", "e.g. https://…/v#EC1:…"],
    qrSubmit: ["验证二维码", "Verify QR code"],
    licenceHeading: ["证照信息", "Licence data"],
    noLicence: ["未能读出证照数据", "No licence data could be read"],
    untrusted: ["以下数据取自未通过核验的内容，不可作为依据。",
                "The data below comes from content that did not pass verification: do not rely on it."],
    checksHeading: ["核验项目", "Checks"],
    colResult: ["结果", "Result"], colCheck: ["项目", "Check"], colReason: ["说明", "Reason"],
    sigHeading: ["签章", "Signatures"], verifiedAt: ["核验时间", "Verified at"],
    pageCaption: ["证照第 1 页（含印章）。图像仅供对照，以核验结果为准。",
                  "Page 1 of the licence, with its seal. The picture is for comparison only; the verdict decides."],
    footer: ["依据 C 0210-2021、GB/T 33190、GB/T 38540；签名算法 SM2/SM3。",
             "Per C 0210-2021, GB/T 33190, GB/T 38540; signatures SM2/SM3."],
    langButton: ["English", "中文"],
    verifying: ["正在核验……", "Verifying…"],
    noSignatures: ["无签章", "no signatures"],
    failedChecks: ["未通过的项目：", "Failed checks:"],
    warnChecks: ["需要注意：", "Note:"],
    errorPrefix: ["请求失败：", "Request failed: "],
    networkError: ["无法连接验证服务，请稍后重试。", "Cannot reach the verification service; please retry."],
    emptyQr: ["请粘贴二维码内容。", "Please paste the QR code text."],
    "verdict.valid": ["有效", "VALID"],
    "verdict.invalid": ["无效", "INVALID"],
    "verdict.indeterminate": ["无法确认", "CANNOT BE CONFIRMED"],
    "note.valid": ["签章完整、证书可信，证照在登记簿中有效。",
                   "Seal intact, certificates trusted, and the licence is valid in the registry."],
    "note.invalid": ["文件被改动、签章不可信或证照已失效，不能作为有效证照使用。",
                     "The file was altered, its seal is not trusted, or the licence is no longer valid: do not accept it."],
    "note.indeterminate": ["部分项目无法核实（例如签发机关不在信任列表中），请向发证机关核实。",
                           "Some checks could not be completed (e.g. the issuer is not in the trust list): confirm with the issuing authority."],
  };
  const CHECKS = {  // check name -> [zh, en]; unknown names are shown as they come
    package: ["文件包", "Package"], references: ["文件完整性", "File integrity"], data_hash: ["签名数据摘要", "Signed data hash"],
    signature: ["签名值", "Signature value"], signature_xml: ["签名描述文件", "Signature description"],
    signed_value: ["签章数据", "Signed value"], signatures: ["签章", "Signatures"],
    seal_match: ["印章一致", "Seal matches"], seal_signature: ["印章制作签名", "Seal maker's signature"],
    seal_validity: ["印章有效期", "Seal validity"], seal_cert_list: ["印章证书列表", "Seal certificate list"],
    signer_cert_validity: ["签名证书有效期", "Signer certificate validity"], certificate_chain: ["证书链", "Certificate chain"],
    revocation: ["吊销状态", "Revocation"], timestamp: ["时间戳", "Timestamp"], coverage: ["签名覆盖范围", "Signature coverage"],
    licence_status: ["登记状态", "Registry status"], licence_validity: ["证照有效期", "Licence validity"],
    catalogue: ["证照目录", "Catalogue"], specimen: ["样证标记", "Specimen mark"], issuer: ["签发机关", "Issuer"],
    key_id: ["密钥标识", "Key id"], key_usage: ["密钥用途", "Key usage"], signing_time: ["签名时间", "Signing time"],
    qr_format: ["二维码格式", "QR format"], qr_signature: ["二维码签名", "QR signature"],
  };
  const FIELDS = [  // licence data items shown, in this order: [key, zh, en]
    ["name", "姓名", "Name"], ["sex", "性别", "Sex"], ["id_number", "证件号码", "ID number"],
    ["holder_id_type", "证件类型", "ID type"], ["category", "作业类别", "Operation category"],
    ["item", "操作项目", "Operation item"], ["licence_number", "证号", "Licence number"],
    ["first_issue_date", "初次领证日期", "First issued"], ["valid_from", "有效期起", "Valid from"],
    ["valid_until", "有效期至", "Valid until"], ["review_due", "应复审日期", "Review due"],
    ["issue_date", "签发日期", "Issue date"], ["issuer_name", "签发机关", "Issuing authority"],
    ["issuer_code", "签发机关代码", "Issuer code"], ["identifier", "证照标识", "Licence identifier"],
  ];
  const MARKS = { pass: "✓", fail: "✗", warn: "!", skip: "–" };

  let lang = "zh";
  let last = null;       // {report, source} of the last answer, to redraw on language change
  let pageUrl = null;    // blob: URL of the rendered page

  const $ = (id) => document.getElementById(id);
  const t = (key) => T[key][lang === "en" ? 1 : 0];
  const text = (el, value) => { el.textContent = value == null ? "" : String(value); return el; };
  const make = (tag, value, cls) => { const el = document.createElement(tag); if (cls) el.className = cls; return text(el, value); };
  const pick = (zh, en) => (lang === "en" ? (en || zh) : (zh || en));

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    document.querySelectorAll("[data-i18n]").forEach((el) => text(el, t(el.dataset.i18n)));
    document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
    const btn = $("lang");
    text(btn, t("langButton"));
    btn.lang = lang === "zh" ? "en" : "zh-CN";
    if (last) show(last.report, last.source);
  }

  function setStatus(message, isError) {
    const el = $("status");
    text(el, message);
    el.classList.toggle("error", !!isError);
  }

  function checkLabel(name) {
    const pair = CHECKS[name];
    return pair ? pick(pair[0], pair[1]) : name;
  }

  function show(report, source) {
    last = { report: report, source: source };
    const verdict = ["valid", "invalid", "indeterminate"].includes(report.verdict) ? report.verdict : "indeterminate";
    const box = $("verdict");
    box.className = "verdict " + verdict;
    box.dataset.verdict = verdict;
    text($("verdict-word"), t("verdict." + verdict));
    text($("verdict-note"), t("note." + verdict));

    const checks = Array.isArray(report.checks) ? report.checks : [];
    const failures = $("failures");
    failures.replaceChildren();
    let named = checks.filter((c) => c && c.status === "fail");
    if (!named.length && verdict !== "valid") named = checks.filter((c) => c && (c.status === "warn" || c.status === "skip"));
    const title = $("failures-title");
    title.hidden = !named.length;
    text(title, named.length && named[0].status === "fail" ? t("failedChecks") : t("warnChecks"));
    for (const c of named) {
      const li = document.createElement("li");
      li.dataset.check = String(c.name);
      li.append(make("b", checkLabel(c.name) + (c.signature ? " (" + c.signature + ")" : "")), document.createTextNode("：" + pick(c.reason_zh, c.reason_en)));
      failures.append(li);
    }

    const body = $("checks");
    body.replaceChildren();
    for (const c of checks) {
      if (!c) continue;
      const status = MARKS[c.status] ? c.status : "skip";
      const tr = document.createElement("tr");
      tr.className = status;
      tr.dataset.check = String(c.name);
      tr.dataset.status = status;
      const name = make("td", checkLabel(c.name), "c-name");
      name.append(make("small", c.name + (c.signature ? " · " + c.signature : "")));
      tr.append(make("td", MARKS[status], "c-mark"), name, make("td", pick(c.reason_zh, c.reason_en), "c-reason"));
      body.append(tr);
    }

    const dl = $("licence");
    dl.replaceChildren();
    const lic = report.licence && typeof report.licence === "object" ? report.licence : null;
    $("no-licence").hidden = !!lic;
    $("untrusted").hidden = !lic || verdict === "valid";
    if (lic) {
      for (const [key, zh, en] of FIELDS) {
        if (lic[key] == null || lic[key] === "") continue;
        const dd = make("dd", lic[key]);
        dd.dataset.field = key;
        dl.append(make("dt", pick(zh, en)), dd);
      }
    }

    const sigs = $("signatures");
    sigs.replaceChildren();
    for (const s of Array.isArray(report.signatures) ? report.signatures : []) {
      if (!s) continue;
      const parts = [s.signer || s.id, s.format || s.type, s.signed_at, s.kid ? "kid " + s.kid : null].filter(Boolean);
      sigs.append(make("li", parts.join(" · ")));
    }
    if (!sigs.children.length) sigs.append(make("li", t("noSignatures"), "muted"));
    text($("verified-at"), report.verified_at || "");
    text($("doc-sm3"), report.document && report.document.sm3 ? report.document.sm3 : "");

    $("page-figure").hidden = !(source === "file" && pageUrl);
    $("result").hidden = false;
  }

  async function errorText(resp) {
    try {
      const body = await resp.json();
      return pick(body.message_zh, body.message_en) || resp.statusText;
    } catch (e) {
      return resp.status + " " + resp.statusText;
    }
  }

  async function post(url, options, source) {
    setStatus(t("verifying"), false);
    $("qr-submit").disabled = true;
    try {
      const resp = await fetch(url, Object.assign({ method: "POST", credentials: "omit", cache: "no-store" }, options));
      if (!resp.ok) {
        setStatus(t("errorPrefix") + (await errorText(resp)), true);
        return;
      }
      const report = await resp.json();
      setStatus("", false);
      show(report, source);
      document.body.dataset.state = "done";
    } catch (e) {
      setStatus(t("networkError"), true);
    } finally {
      $("qr-submit").disabled = false;
    }
  }

  function clearPage() {
    if (pageUrl) URL.revokeObjectURL(pageUrl);
    pageUrl = null;
    $("page-image").removeAttribute("src");
    $("page-figure").hidden = true;
  }

  async function renderPage(file) {
    const form = new FormData();
    form.append("file", file);
    try {
      const resp = await fetch("/v1/render", { method: "POST", body: form, credentials: "omit" });
      if (!resp.ok) return;  // the verdict says why a document is bad; no picture is no harm
      pageUrl = URL.createObjectURL(await resp.blob());
      const img = $("page-image");
      img.alt = t("pageCaption");
      img.src = pageUrl;
      if (last && last.source === "file") $("page-figure").hidden = false;
    } catch (e) { /* network: the verdict request reports it */ }
  }

  function verifyFile(file) {
    if (!file) return;
    text($("file-name"), file.name);
    document.body.dataset.state = "busy";
    clearPage();
    last = null;
    $("result").hidden = true;
    const form = new FormData();
    form.append("file", file);
    renderPage(file);
    return post("/v1/verify", { body: form }, "file");
  }

  function verifyQr(raw) {
    const value = (raw || "").trim();
    if (!value) { setStatus(t("emptyQr"), true); return; }
    document.body.dataset.state = "busy";
    clearPage();
    last = null;
    $("result").hidden = true;
    return post("/v1/qr/verify", { body: JSON.stringify({ text: value }), headers: { "Content-Type": "application/json" } }, "qr");
  }

  // The QR landing page: /v#EC1:... — the fragment never reached the server; verify it now.
  function verifyFragment() {
    let hash = location.hash.slice(1);
    try { hash = decodeURIComponent(hash); } catch (e) { /* keep it raw: the server judges it */ }
    if (!hash.startsWith("EC1:")) return;
    $("qr-text").value = location.origin + location.pathname + "#" + hash;
    verifyQr(hash);
  }

  function init() {
    const saved = (() => { try { return localStorage.getItem("ecert-lang"); } catch (e) { return null; } })();
    if (saved === "en" || saved === "zh") lang = saved;
    applyLanguage();
    $("lang").addEventListener("click", () => {
      lang = lang === "zh" ? "en" : "zh";
      try { localStorage.setItem("ecert-lang", lang); } catch (e) { /* private mode */ }
      applyLanguage();
    });
    $("file").addEventListener("change", (ev) => verifyFile(ev.target.files[0]));
    const drop = $("drop");
    ["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (ev) => { ev.preventDefault(); drop.classList.add("over"); }));
    ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => drop.classList.remove("over")));
    drop.addEventListener("drop", (ev) => {
      ev.preventDefault();
      const file = ev.dataTransfer && ev.dataTransfer.files[0];
      if (file) verifyFile(file);
    });
    $("file-form").addEventListener("submit", (ev) => ev.preventDefault());
    $("qr-form").addEventListener("submit", (ev) => { ev.preventDefault(); verifyQr($("qr-text").value); });
    verifyFragment();
    window.addEventListener("hashchange", verifyFragment);
    document.body.dataset.ready = "1";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
