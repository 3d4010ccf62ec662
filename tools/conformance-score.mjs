// Score a results file of the HTTP caching tests (cache-tests) the way
// cache-tests.fyi counts (test-engine/lib/results.mjs): a test passes only if
// it passed and every test it depends on passed; totals per kind (required,
// optimal, check; no kind means required). Tests the suite's runner skips for
// a reverse proxy (browser_only) are left out of the totals, as the site
// shows them untested, and listed apart. The whole suite (tests/index.mjs) is
// scored, and its CDN-Cache-Control group also on its own.
//   node tools/conformance-score.mjs SUITE_DIR RESULTS.json
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [suiteDir, resultsFile] = process.argv.slice(2)
const suites = (await import(pathToFileURL(path.join(suiteDir, 'tests/index.mjs')).href)).default
const results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'))

const byId = {}
for (const s of suites) for (const t of s.tests) byId[t.id] = t
const kindOf = (t) => t.kind || 'required'
const runs = (t) => t.browser_only !== true

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
    for (const t of s.tests.filter(runs)) {
      const kind = kindOf(t)
      out[kind] = out[kind] || { passed: 0, total: 0 }
      out[kind].total++
      if (passed(t.id)) out[kind].passed++
    }
  }
  return out
}

const report = {
  suite: score(suites),
  'cdn-cache-control': score(suites.filter(s => s.id === 'cdn-cache-control')),
  browser_only: Object.keys(byId).filter(id => !runs(byId[id])).sort(),
  failing: {},
  failed_deps: {}
}
for (const t of Object.values(byId).filter(runs)) {
  if (passed(t.id)) continue
  const kind = kindOf(t)
  report.failing[kind] = report.failing[kind] || []
  report.failing[kind].push(t.id)
  report.failed_deps[t.id] = (t.depends_on || []).filter(d => !passed(d))
}
for (const kind in report.failing) report.failing[kind].sort()
report.failing_required = report.failing.required || []
console.log(JSON.stringify(report, null, 2))
