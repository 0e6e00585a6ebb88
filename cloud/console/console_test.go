package console

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/ingest"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
)

// noDB stands in for ClickHouse where a test reaches only routes that do
// not read it (/me, /projects, device lists from the in-memory latest
// values).
type noDB struct{}

func (noDB) Ping(context.Context) error { return errors.New("no database in this test") }
func (noDB) Readings() *store.Readings  { return nil }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// newServer serves the console and the API for the demo organisation.
func newServer(t *testing.T, cfg Config) (*httptest.Server, *Console, *clock) {
	t.Helper()
	b, err := config.LoadBundle("../../configs/org.yaml", "../../configs/tariffs.yaml", "../../configs/templates", "../../configs/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	con, err := New(cfg, Deps{Org: &b.Org, Logger: log, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{}, api.Deps{Bundle: b, DB: noDB{}, Sessions: con, Logger: log, Latest: ingest.NewLatest()})
	if err != nil {
		t.Fatal(err)
	}
	con.Attach(srv)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, con, clk
}

type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values, header ...string) (int, http.Header, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(out)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) csrf(path string) string {
	b.t.Helper()
	_, _, body := b.do("GET", path, nil)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("no CSRF field on %s", path)
	}
	return m[1]
}

func (b *browser) signIn(staff, password string) int {
	b.t.Helper()
	tok := b.csrf("/signin")
	code, _, _ := b.do("POST", "/signin", url.Values{"csrf": {tok}, "staff": {staff}, "password": {password}})
	return code
}

func TestCataloguesHaveTheSameKeys(t *testing.T) {
	c, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	if m := c.missing(); len(m) > 0 {
		t.Fatalf("catalogues differ:\n%s", strings.Join(m, "\n"))
	}
	// Every key a template or script names literally is in the catalogue.
	re := regexp.MustCompile(`\.T "([a-z0-9_.]+)"`)
	for _, name := range append([]string{"layout", "parts"}, pageNames...) {
		b, err := templateFiles.ReadFile("templates/" + name + ".html")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if _, ok := c[DefaultLanguage][m[1]]; !ok {
				t.Errorf("templates/%s.html uses %q, which locale/%s.json lacks", name, m[1], DefaultLanguage)
			}
		}
	}
}

func TestAssetsHashedCachedCompressed(t *testing.T) {
	ts, con, _ := newServer(t, Config{})
	u := con.assets.URL("vendor/echarts/echarts.common.min.js")
	if !regexp.MustCompile(`^/assets/echarts\.common\.min\.[0-9a-f]{10}\.js$`).MatchString(u) {
		t.Fatalf("asset URL %q is not content-hashed", u)
	}
	b := newBrowser(t, ts.URL)
	code, h, body := b.do("GET", u, nil, "Accept-Encoding", "gzip")
	if code != 200 || h.Get("Content-Encoding") != "gzip" || !strings.Contains(h.Get("Cache-Control"), "immutable") {
		t.Fatalf("GET %s: %d, headers %v", u, code, h)
	}
	raw := con.assets.byLogical["vendor/echarts/echarts.common.min.js"].raw
	if len(body) >= len(raw)/2 {
		t.Fatalf("compressed %d bytes of %d: not compressed", len(body), len(raw))
	}
	if code, _, _ := b.do("GET", "/assets/echarts.common.min.0000000000.js", nil); code != 404 {
		t.Fatalf("unknown hash answered %d", code)
	}
}

func TestSignInSessionCSRFAndExpiry(t *testing.T) {
	ts, con, clk := newServer(t, Config{})
	b := newBrowser(t, ts.URL)

	// Not signed in: pages send to the sign-in page; the API says 401.
	if code, h, _ := b.do("GET", "/alarms", nil); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/signin") {
		t.Fatalf("GET /alarms without session: %d → %q", code, h.Get("Location"))
	}
	// Security headers on every page.
	_, h, _ := b.do("GET", "/signin", nil)
	if !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") || h.Get("Referrer-Policy") == "" {
		t.Fatalf("security headers missing: %v", h)
	}
	// A sign-in form posted without its token is refused.
	if code, _, _ := b.do("POST", "/signin", url.Values{"staff": {"pm-garden"}, "password": {"demo-pw-pm-garden"}}); code != http.StatusForbidden {
		t.Fatalf("sign-in without CSRF token: %d, want 403", code)
	}
	if code := b.signIn("pm-garden", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", code)
	}
	if code := b.signIn("pm-garden", "demo-pw-pm-garden"); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d, want 303", code)
	}
	var sc *http.Cookie
	u, _ := url.Parse(ts.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			sc = c
		}
	}
	if sc == nil {
		t.Fatal("no session cookie")
	}
	// The session authenticates API calls: the same answer as the token's.
	code, _, body := b.do("GET", "/api/v1/me", nil)
	if code != 200 || !strings.Contains(body, `"staff":"pm-garden"`) {
		t.Fatalf("GET /api/v1/me with the session: %d %s", code, body)
	}
	// A state-changing API call with the session cookie but no CSRF header
	// is refused before any handler runs.
	if code, _, body := b.do("POST", "/api/v1/workorders", url.Values{}); code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
		t.Fatalf("POST without CSRF header: %d %s", code, body)
	}
	// Sign-out without the token is refused; with it, it ends the session.
	if code, _, _ := b.do("POST", "/signout", url.Values{}); code != http.StatusForbidden {
		t.Fatalf("sign-out without token: %d", code)
	}
	// Idle expiry: 31 minutes without a request.
	clk.add(31 * time.Minute)
	if code, _, body := b.do("GET", "/api/v1/me", nil); code != http.StatusUnauthorized || !strings.Contains(body, "session expired") {
		t.Fatalf("API after idle expiry: %d %s", code, body)
	}
	if code, h, _ := b.do("GET", "/alarms", nil); code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "expired=1") {
		t.Fatalf("page after idle expiry: %d → %q", code, h.Get("Location"))
	}
	// Absolute expiry: active all along, still ends after 12 hours.
	b2 := newBrowser(t, ts.URL)
	if code := b2.signIn("hq-admin", "demo-pw-hq-admin"); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", code)
	}
	for i := 0; i < 25; i++ {
		clk.add(29 * time.Minute)
		code, _, _ := b2.do("GET", "/api/v1/me", nil)
		if i < 24 && code != 200 {
			t.Fatalf("after %d×29m: %d", i+1, code)
		}
		if i == 24 && code != http.StatusUnauthorized {
			t.Fatalf("after %s the session still works", time.Duration(i+1)*29*time.Minute)
		}
	}
	// Sign-out ends the session on the server, not only in the browser.
	b3 := newBrowser(t, ts.URL)
	b3.signIn("hq-viewer", "demo-pw-hq-viewer")
	n := con.Sessions()
	tok := b3.csrf("/alarms")
	if code, _, _ := b3.do("POST", "/signout", url.Values{"csrf": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", code)
	}
	if con.Sessions() != n-1 {
		t.Fatalf("sessions %d → %d after sign-out", n, con.Sessions())
	}
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/me", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sc.Value})
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired cookie replayed: %v %v", resp.StatusCode, err)
	}
}

func TestSignInThrottled(t *testing.T) {
	ts, _, clk := newServer(t, Config{})
	b := newBrowser(t, ts.URL)
	for i := 0; i < 5; i++ {
		if code := b.signIn("pm-tower", "nope"); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, code)
		}
	}
	// The account is locked, even with the right password…
	if code := b.signIn("pm-tower", "demo-pw-pm-tower"); code != http.StatusTooManyRequests {
		t.Fatalf("locked account: %d, want 429", code)
	}
	// …other accounts from here still work until the address limit…
	if code := b.signIn("pm-garden", "demo-pw-pm-garden"); code != http.StatusSeeOther {
		t.Fatalf("other account: %d", code)
	}
	// …and the lock ends after the window.
	clk.add(16 * time.Minute)
	b2 := newBrowser(t, ts.URL)
	if code := b2.signIn("pm-tower", "demo-pw-pm-tower"); code != http.StatusSeeOther {
		t.Fatalf("after the window: %d", code)
	}
	// Per address: 20 failures over several accounts lock the address.
	b3 := newBrowser(t, ts.URL)
	for i := 0; i < 20; i++ {
		b3.signIn("staff-"+string(rune('a'+i)), "x")
	}
	if code := b3.signIn("hq-admin", "demo-pw-hq-admin"); code != http.StatusTooManyRequests {
		t.Fatalf("locked address: %d, want 429", code)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{"/hq?month=2026-01": "/hq?month=2026-01", "//evil.example/": "/", "https://evil.example": "/", "/\\evil": "/", "": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
