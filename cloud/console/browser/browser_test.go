package browser

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/plantroom/plantroom/cloud/energy"
)

// eval runs a JavaScript expression in the tab and decodes its value.
func eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until expr is true in the tab, across navigations. A
// condition on location holds as soon as a navigation commits, before the
// new document is parsed: pair it with document.readyState === "complete"
// (or the element read next) or the next read may find no element.
func waitJS(t testing.TB, ctx context.Context, what, expr string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool]("Boolean("+expr+")"))
		cancel()
		if err == nil && ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("%s: not within %s (page %s, last error %v)", what, timeout, loc, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// open navigates and returns the document's HTTP status.
func open(t testing.TB, ctx context.Context, url string) int {
	t.Helper()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

func bodyText(t testing.TB, ctx context.Context) string {
	return eval[string](t, ctx, "document.body.innerText")
}

// signIn fills in the sign-in form as a person would and waits for the
// landing page.
func signIn(t testing.TB, ctx context.Context, s *system, staff string) string {
	t.Helper()
	return signInAs(t, ctx, s, staff, "demo-pw-"+staff)
}

func signInAs(t testing.TB, ctx context.Context, s *system, staff, password string) string {
	t.Helper()
	open(t, ctx, s.URL+"/signin")
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#staff"), staff),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#signin-submit")),
	); err != nil {
		t.Fatalf("sign in as %s: %v", staff, err)
	}
	waitJS(t, ctx, "leave the sign-in page", `location.pathname !== "/signin" && document.readyState === "complete"`, 60*time.Second)
	return eval[string](t, ctx, "location.pathname")
}

func TestConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test starts a whole system; not in -short")
	}
	start := time.Now()
	browser := newBrowser(t)
	s := startSystem(t)
	t.Logf("system up with history in %s", time.Since(start).Round(100*time.Millisecond))

	t.Run("roles see what they may and nothing else", func(t *testing.T) {
		for _, c := range []struct {
			staff, landing string
			sees, never    []string
		}{
			{"hq-admin", "/hq", []string{"翠湖花园", "滨江商务中心"}, nil},
			{"hq-viewer", "/hq", []string{"翠湖花园", "滨江商务中心"}, nil},
			{"pm-garden", "/projects/garden", []string{"翠湖花园"}, []string{"滨江商务中心", "tower-"}},
			{"pm-tower", "/projects/tower", []string{"滨江商务中心"}, []string{"翠湖花园", "garden-"}},
			{"tech-garden-1", "/projects/garden", []string{"翠湖花园"}, []string{"滨江商务中心", "tower-"}},
			{"tech-tower-1", "/projects/tower", []string{"滨江商务中心"}, []string{"翠湖花园", "garden-"}},
		} {
			t.Run(c.staff, func(t *testing.T) {
				ctx := tab(t, browser)
				if got := signIn(t, ctx, s, c.staff); got != c.landing {
					t.Fatalf("landed on %s, want %s", got, c.landing)
				}
				pages := []string{c.landing, "/alarms"}
				for _, p := range pages {
					if code := open(t, ctx, s.URL+p); code != 200 {
						t.Fatalf("%s: %d", p, code)
					}
					text := bodyText(t, ctx)
					for _, w := range c.sees {
						if p == c.landing && !strings.Contains(text, w) {
							t.Errorf("%s does not show %q", p, w)
						}
					}
					for _, w := range c.never {
						if strings.Contains(text, w) {
							t.Errorf("%s shows %q to %s", p, w, c.staff)
						}
					}
					if strings.Contains(text, "⟦") {
						t.Errorf("%s shows a missing catalogue key: %s", p, text)
					}
				}
				switch c.staff {
				case "hq-viewer":
					// Read only: no acknowledge button anywhere.
					for _, p := range []string{"/alarms", "/projects/garden"} {
						open(t, ctx, s.URL+p)
						if n := eval[int](t, ctx, `document.querySelectorAll("form.ack").length`); n != 0 {
							t.Errorf("%s shows %d acknowledge forms to hq-viewer", p, n)
						}
					}
				case "pm-garden", "tech-garden-1", "pm-tower", "tech-tower-1":
					other, otherDev := "tower", "tower-elevator-1"
					if strings.HasSuffix(c.staff, "tower") || strings.HasSuffix(c.staff, "tower-1") {
						other, otherDev = "garden", "garden-elevator-1"
					}
					// Not even by URL: the page, the device, the API, the HQ page.
					for _, p := range []string{"/projects/" + other, "/devices/" + otherDev, "/projects/" + other + "/devices"} {
						if code := open(t, ctx, s.URL+p); code != http.StatusNotFound {
							t.Errorf("%s opened %s: %d, want 404", c.staff, p, code)
						}
						if text := bodyText(t, ctx); strings.Contains(text, otherDev) || strings.Contains(text, "滨江商务中心") && other == "tower" {
							t.Errorf("%s shows another project's data to %s: %q", p, c.staff, text)
						}
					}
					if code := eval[int](t, ctx, `fetch("/api/v1/projects/`+other+`").then(r => r.status)`); code != http.StatusNotFound {
						t.Errorf("API /projects/%s with %s's session: %d, want 404", other, c.staff, code)
					}
					if code := open(t, ctx, s.URL+"/hq"); code == http.StatusOK {
						t.Errorf("%s opened the HQ overview", c.staff)
					}
					if strings.HasPrefix(c.staff, "tech") {
						open(t, ctx, s.URL+c.landing)
						if !strings.Contains(bodyText(t, ctx), "您的角色不查看能耗报表") {
							t.Errorf("a technician's project page does not say that energy is not for their role")
						}
						if n := eval[int](t, ctx, `document.querySelectorAll("#project-kwh").length`); n != 0 {
							t.Errorf("a technician sees the project's energy")
						}
					}
				}
			})
		}
	})

	t.Run("HQ figures equal the API's", func(t *testing.T) {
		ctx := tab(t, browser)
		signIn(t, ctx, s, "hq-admin")
		open(t, ctx, s.URL+"/hq?month="+s.Prev)
		var want energy.CompanyMonthly
		if code := s.apiGet(t, "demo-hq-admin", "/api/v1/energy/monthly?month="+s.Prev, &want); code != 200 {
			t.Fatalf("API HQ report: %d", code)
		}
		if want.KWh <= 0 {
			t.Fatalf("the API's HQ report of %s has no energy: the history did not arrive", s.Prev)
		}
		got := eval[float64](t, ctx, `parseFloat(document.getElementById("company-kwh").dataset.value)`)
		if got != want.KWh {
			t.Errorf("company kWh on the page %v, API %v", got, want.KWh)
		}
		if want.Cost != nil {
			if got := eval[float64](t, ctx, `parseFloat(document.getElementById("company-cost").dataset.value)`); got != *want.Cost {
				t.Errorf("company cost on the page %v, API %v", got, *want.Cost)
			}
		}
		rows := eval[[]map[string]string](t, ctx, `[...document.querySelectorAll("#hq-table tbody tr")].map(tr => ({
			project: tr.dataset.project,
			kwh: tr.querySelector("[data-field=kwh]").dataset.value,
			kwh_per_m2: tr.querySelector("[data-field=kwh_per_m2]").dataset.value,
			cost: tr.querySelector("[data-field=cost]").dataset.value}))`)
		if len(rows) != len(want.Projects) {
			t.Fatalf("%d project rows on the page, %d in the API", len(rows), len(want.Projects))
		}
		for i, p := range want.Projects {
			r := rows[i]
			if r["project"] != p.Project || num(t, r["kwh"]) != p.KWh || num(t, r["kwh_per_m2"]) != p.KWhPerM2 || num(t, r["cost"]) != p.Cost {
				t.Errorf("rank %d: page %v, API %s %v kWh %v kWh/m² %v", i+1, r, p.Project, p.KWh, p.KWhPerM2, p.Cost)
			}
		}
		// What a person reads: the formatted total.
		if text := eval[string](t, ctx, `document.getElementById("company-kwh").textContent`); text != formatKWh(want.KWh) {
			t.Errorf("company kWh reads %q, want %q", text, formatKWh(want.KWh))
		}
	})

	t.Run("charts render with data", func(t *testing.T) {
		ctx := tab(t, browser)
		signIn(t, ctx, s, "pm-garden")
		checkCharts := func(page string, ids ...string) {
			t.Helper()
			open(t, ctx, s.URL+page)
			d := waitJS(t, ctx, page+" charts drawn", `document.body.dataset.chartsDone === "1"`, 30*time.Second)
			if failed := eval[string](t, ctx, `document.body.dataset.chartsFailed || ""`); failed != "" {
				t.Errorf("%s: %s charts failed to load", page, failed)
			}
			for _, id := range ids {
				n := eval[int](t, ctx, fmt.Sprintf(`(() => { const el = document.getElementById(%q);
					if (!el || el.dataset.drawn !== "1" || !el.querySelector("canvas")) return -1;
					const o = echarts.getInstanceByDom(el).getOption();
					return o.series.reduce((n, s) => n + s.data.filter(v => v !== null && (Array.isArray(v) ? v[1] !== null : true)).length, 0); })()`, id))
				if n <= 0 {
					t.Errorf("%s: chart #%s has no data points (%d)", page, id, n)
				}
			}
			t.Logf("%s: charts drawn after %s", page, d.Round(time.Millisecond))
		}
		checkCharts("/projects/garden?month="+s.Prev, "chart-daily")
		checkCharts("/devices/garden-meter-main", "chart-series")
		hq := tab(t, browser)
		signIn(t, hq, s, "hq-viewer")
		ctx = hq
		clearBrowserCache(hq) // the HQ page as a first visit: nothing cached
		checkCharts("/hq?month="+s.Prev, "chart-ranking", "chart-trend", "chart-category", "chart-period")
		// Figures on this small dataset, for the record (the benchmark
		// measures the 50-project company).
		ms := eval[float64](t, ctx, `performance.getEntriesByName("plantroom-charts-drawn")[0].startTime`)
		first := transferred(t, ctx)
		open(t, ctx, s.URL+"/projects/garden?month="+s.Prev)
		waitJS(t, ctx, "project charts", `document.body.dataset.chartsDone === "1"`, 30*time.Second)
		t.Logf("HQ overview (2 projects): navigation → charts drawn %.0f ms, first visit %.1f KB transferred; next page %.1f KB",
			ms, first/1024, transferred(t, ctx)/1024)
	})

	t.Run("a chart whose data fails is done with errors", func(t *testing.T) {
		ctx := tab(t, browser)
		signIn(t, ctx, s, "hq-viewer")
		// The trend's request answers 503 in this tab (as when its reports
		// time out): the page is done at once, saying which chart failed.
		if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `(() => {
				const f = window.fetch;
				window.fetch = (u, o) => String(u).includes("/hq/trend") ? Promise.resolve(new Response("{}", {status: 503})) : f(u, o);
			})()`})
			return err
		})); err != nil {
			t.Fatal(err)
		}
		open(t, ctx, s.URL+"/hq?month="+s.Prev)
		waitJS(t, ctx, "HQ page done", `document.body.dataset.chartsDone === "1"`, 30*time.Second)
		if got := eval[string](t, ctx, `document.body.dataset.chartsFailed || ""`); got != "1" {
			t.Errorf("charts failed %q, want 1", got)
		}
		if got := eval[string](t, ctx, `document.getElementById("chart-trend").dataset.error || ""`); !strings.Contains(got, "status 503 of /hq/trend") {
			t.Errorf("trend chart's error %q, want its status and address", got)
		}
		if got := eval[string](t, ctx, `document.getElementById("chart-ranking").dataset.error || ""`); got != "" {
			t.Errorf("ranking chart failed too: %q", got)
		}
	})

	t.Run("a trapped passenger reaches the open alarm feed", func(t *testing.T) {
		ctx := tab(t, browser)
		signIn(t, ctx, s, "tech-garden-1")
		open(t, ctx, s.URL+"/alarms")
		waitJS(t, ctx, "the feed connects", `document.getElementById("feed-status").classList.contains("online")`, 15*time.Second)
		resp, err := http.Post(s.Control+"/devices/garden-elevator-1/trapped", "application/json", nil)
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("trap a passenger: %v %v", err, resp)
		}
		resp.Body.Close()
		// The elevator is polled every 10 s: the alarm must be on screen
		// within that plus 2 s.
		d := waitJS(t, ctx, "the entrapment alarm in the feed",
			`document.querySelector('#feed-live li.sev-critical[data-kind="raise"]')`, 12*time.Second)
		t.Logf("entrapment on screen %s after the simulator trapped the passenger", d.Round(time.Millisecond))
		text := eval[string](t, ctx, `document.querySelector('#feed-live li.sev-critical[data-kind="raise"]').innerText`)
		if !strings.Contains(text, "garden-elevator-1") {
			t.Errorf("the feed item does not name the elevator: %q", text)
		}
		if got := eval[string](t, ctx, `document.getElementById("announce").textContent`); !strings.Contains(got, "garden-elevator-1") {
			t.Errorf("the critical alarm was not announced to screen readers: %q", got)
		}
		if r, err := http.Post(s.Control+"/devices/garden-elevator-1/events/release", "application/json", nil); err == nil {
			r.Body.Close()
		}
	})

	t.Run("a technician works an order on the phone", func(t *testing.T) { technicianOrder(t, browser, s) })

	t.Run("the project manager switches the garage lights", func(t *testing.T) { garageControl(t, browser, s) })

	t.Run("CSRF", func(t *testing.T) {
		ctx := tab(t, browser)
		signIn(t, ctx, s, "pm-garden")
		open(t, ctx, s.URL+"/projects/garden")
		// The API refuses a cookie-authenticated write without the token…
		if code := eval[int](t, ctx, `fetch("/api/v1/workorders", {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"}).then(r => r.status)`); code != http.StatusForbidden {
			t.Errorf("POST /api/v1/workorders without X-CSRF-Token: %d, want 403", code)
		}
		// …and takes it with the token (the empty body is then what it refuses).
		if code := eval[int](t, ctx, `fetch("/api/v1/workorders", {method: "POST", headers: {"Content-Type": "application/json",
			"X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content}, body: "{}"}).then(r => r.status)`); code == http.StatusForbidden || code/100 == 2 {
			t.Errorf("POST /api/v1/workorders with the token and an empty body: %d, want a validation error", code)
		}
		// A form on another site posting to the console: refused, and the
		// session is still there.
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `<!doctype html><form id=f method=post action="%s/signout"></form><script>document.getElementById("f").submit()</script>`, s.URL)
		}))
		defer evil.Close()
		open(t, ctx, evil.URL)
		waitJS(t, ctx, "the forged form posted", `location.href.startsWith(`+strconv.Quote(s.URL)+`) && document.readyState === "complete"`, 10*time.Second)
		if text := bodyText(t, ctx); !strings.Contains(text, "安全校验失败") {
			t.Errorf("the forged sign-out was not refused with the CSRF message: %q", text)
		}
		if code := open(t, ctx, s.URL+"/api/v1/me"); code != 200 {
			t.Errorf("after the forged sign-out the session is gone: /api/v1/me %d", code)
		}
	})

	t.Run("an expired session says so", func(t *testing.T) {
		ctx := tab(t, browser)
		signIn(t, ctx, s, "pm-garden")
		open(t, ctx, s.URL+"/projects/garden")
		// The server no longer knows the session (expired, or the cloud
		// restarted).
		httpOnly := true
		if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{Name: "plantroom_session",
				Value: "expired-or-unknown", URL: s.URL, HTTPOnly: &httpOnly})
			return err
		})); err != nil {
			t.Fatal(err)
		}
		// The page's next live update (every 5 s) finds the session gone
		// and sends the viewer to sign in again, saying why, and back to
		// this page afterwards.
		waitJS(t, ctx, "the sign-in page after the live update", `location.pathname === "/signin" && document.readyState === "complete"`, 20*time.Second)
		if loc := eval[string](t, ctx, "location.search"); !strings.Contains(loc, "expired=1") || !strings.Contains(loc, "next=%2Fprojects%2Fgarden") || strings.Contains(loc, "devices") {
			t.Errorf("the live update sent the viewer to /signin%s, want expired=1 and next=/projects/garden", loc)
		}
		if !strings.Contains(bodyText(t, ctx), "登录已过期") {
			t.Errorf("the sign-in page does not say the session expired")
		}
	})

	if dir := os.Getenv("PLANTROOM_SCREENSHOTS"); dir != "" {
		t.Run("screenshots", func(t *testing.T) { screenshots(t, browser, s, dir) })
	}
	t.Logf("browser test took %s", time.Since(start).Round(100*time.Millisecond))
}

func num(t testing.TB, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("not a number on the page: %q", s)
	}
	return v
}

// formatKWh is the page's zh-CN rendering of a kWh figure: one decimal,
// thousands separated by commas.
func formatKWh(v float64) string {
	s := strconv.FormatFloat(v, 'f', 1, 64)
	i, f, _ := strings.Cut(s, ".")
	var b strings.Builder
	for k, d := range i {
		if k > 0 && (len(i)-k)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return b.String() + "." + f
}

// screenshots writes PNGs of every page at laptop and phone widths.
func screenshots(t *testing.T, browser context.Context, s *system, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shots := []struct {
		name, staff, path string
	}{
		{"signin", "", "/signin"},
		{"hq", "hq-admin", "/hq?month=" + s.Prev},
		{"project", "pm-garden", "/projects/garden?month=" + s.Prev},
		{"device", "pm-garden", "/devices/garden-elevator-1"},
		{"alarms", "tech-garden-1", "/alarms"},
		{"my", "tech-garden-1", "/my"},
		{"labels", "pm-garden", "/projects/garden/labels"},
	}
	if s.Order != "" {
		shots = append(shots, struct{ name, staff, path string }{"order", "tech-garden-1", "/workorders/" + s.Order})
	}
	if s.Command != "" { // the garage lights' page with the command's progress and the record
		shots = append(shots, struct{ name, staff, path string }{"control", "pm-garden", "/devices/garden-plug-1?command=" + s.Command})
	}
	for _, size := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{{"laptop", 1366, 900, false}, {"phone", 390, 844, true}} {
		for _, sh := range shots {
			ctx := tab(t, browser)
			opts := []chromedp.EmulateViewportOption{}
			if size.mobile {
				opts = append(opts, chromedp.EmulateScale(2), chromedp.EmulateMobile)
			}
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height, opts...)); err != nil {
				t.Fatal(err)
			}
			if sh.staff != "" {
				signIn(t, ctx, s, sh.staff)
			}
			open(t, ctx, s.URL+sh.path)
			waitJS(t, ctx, "charts", `!document.querySelector("[data-chart]") || document.body.dataset.chartsDone === "1"`, 30*time.Second)
			time.Sleep(700 * time.Millisecond)                          // chart animations settle
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 makes a PNG; below, a JPEG
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, sh.name+"-"+size.name+".png")
			if err := os.WriteFile(p, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", p)
		}
	}
}

func clearBrowserCache(ctx context.Context) error {
	return chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCache, cdp.Empty{})
		return err
	}))
}

func bcryptHash(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	return string(h), err
}
