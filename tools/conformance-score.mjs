// Score a results file of the HTTP caching tests (http-cache-tests) the way
// cache-tests.fyi counts: a test passes only if it passed and every test it
// depends on passed; totals per kind (required, optimal, check). The suite's
// own groups (tests/index.mjs) are scored apart from Surrogate-Control,
// which its command line adds on top.
//   node tools/conformance-score.mjs SUITE_DIR RESULTS.json
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [suiteDir, resultsFile] = process.argv.slice(2)
const load = async (f) => (await import(pathToFileURL(path.join(suiteDir, f)).href)).default
const suites = await load('tests/index.mjs')
const surrogate = await load('tests/surrogate-control.mjs')
const results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'))

const byId = {}
for (const s of [...suites, surrogate]) for (const t of s.tests) byId[t.id] = t

const memo = {}
function passed (id, seen = new Set()) {
  if (id in memo) return memo[id]
  if (seen.has(id) || !(id in byId)) return false
  seen.add(id)
  const ok = results[id] === true && (byId[id].depends_on || []).every(d => passed(d, seen))
  memo[id] = ok
  return ok
}

function score (groups) {
  const out = {}
  for (const s of groups) {
    for (const t of s.tests) {
      const kind = t.kind || 'required'
      out[kind] = out[kind] || { passed: 0, total: 0 }
      out[kind].total++
      if (passed(t.id)) out[kind].passed++
    }
  }
  return out
}

const report = { suite: score(suites), 'surrogate-control': score([surrogate]) }
const failing = Object.keys(byId).filter(id => !passed(id) && (byId[id].kind || 'required') === 'required')
report.failing_required = failing.sort()
console.log(JSON.stringify(report, null, 2))
