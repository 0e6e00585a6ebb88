// Package browser holds the console's tests in a real browser (Debian's
// chromium through chromedp) against a whole system on loopback: bin/cloud,
// a simulated building (bin/devsim) and its edge agent (bin/edge-agent), with
// a month of history backfilled. It also writes the screenshots of
// docs/screenshots/ (make screenshots) and measures the HQ overview for the
// benchmark. Everything is in its _test.go files.
//
// Chromium is required: without it the tests fail (internal/testenv), and
// are skipped only with PLANTROOM_SKIP_BROWSER=1.
package browser
