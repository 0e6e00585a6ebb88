package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/internal/promtext"
)

// TestMetricsLabelsBounded: invented methods and paths add no series; the
// method label is one of a fixed set and the route one of the templates.
func TestMetricsLabelsBounded(t *testing.T) {
	s := newServer(t, testBundle(t), openStore(t), nil)
	for i := 0; i < 200; i++ {
		method := "X" + strings.Repeat("Y", i%50) + string(rune('A'+i%26))
		for _, path := range []string{"/api/v1/projects/p1/devices", "/nowhere/" + method, "/healthz"} {
			req := httptest.NewRequest(method, path, nil)
			s.Handler().ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/projects/p1/devices")
	rec := call(t, s.Handler(), "", http.MethodGet, "/metrics")
	size := rec.Body.Len()
	m, err := promtext.Parse(rec.Body)
	if err != nil {
		t.Fatalf("cannot read /metrics: %v", err)
	}
	var series []promtext.Sample
	for _, sm := range m.Samples {
		if sm.Name == "plantroom_api_requests_total" {
			series = append(series, sm)
		}
	}
	if len(series) == 0 || len(series) > 12 || size > 64<<10 {
		var names []string
		for _, sm := range series {
			names = append(names, sm.Key())
		}
		t.Fatalf("%d request series, /metrics %d bytes:\n%s", len(series), size, strings.Join(names, "\n"))
	}
	for _, sm := range series {
		if method := sm.Labels["method"]; method != "other" && method != "GET" {
			t.Errorf("series %s: method outside the fixed set", sm.Key())
		}
		if route := sm.Labels["route"]; route != "/api/v1/projects/:project/devices" && route != "unmatched" && route != "/healthz" {
			t.Errorf("series %s: route is not a template", sm.Key())
		}
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestForwardedForOnlyFromTrustedProxies: the access log names the peer
// unless the peer is one of api.trusted_proxies.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	b, db := testBundle(t), openStore(t)
	remote := func(proxies []string, peer string) string {
		t.Helper()
		var log syncBuffer
		s, err := api.New(api.Config{Listen: "127.0.0.1:0", TrustedProxies: proxies}, api.Deps{Bundle: b, DB: db,
			Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})), Now: func() time.Time { return testClock }})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.RemoteAddr = peer + ":4711"
		req.Header.Set("X-Forwarded-For", "198.51.100.9, 192.0.2.1")
		s.Handler().ServeHTTP(httptest.NewRecorder(), req)
		i := strings.Index(log.String(), "remote=")
		if i < 0 {
			t.Fatalf("no remote in the access log: %s", log.String())
		}
		return strings.Fields(log.String()[i+len("remote="):])[0]
	}
	if got := remote(nil, "203.0.113.7"); got != "203.0.113.7" {
		t.Errorf("no trusted proxies: remote %s, want the peer 203.0.113.7", got)
	}
	if got := remote(nil, "127.0.0.1"); got != "127.0.0.1" {
		t.Errorf("no trusted proxies, loopback peer: remote %s, want the peer", got)
	}
	if got := remote([]string{"10.0.0.0/8"}, "203.0.113.7"); got != "203.0.113.7" {
		t.Errorf("untrusted peer: remote %s, want the peer 203.0.113.7", got)
	}
	if got := remote([]string{"203.0.113.7"}, "203.0.113.7"); got != "192.0.2.1" {
		t.Errorf("trusted proxy: remote %s, want the nearest forwarded address 192.0.2.1", got)
	}
	if got := remote([]string{"203.0.113.0/24", "192.0.2.1"}, "203.0.113.7"); got != "198.51.100.9" {
		t.Errorf("two trusted proxies: remote %s, want 198.51.100.9", got)
	}
	if _, err := api.New(api.Config{TrustedProxies: []string{"10.0.0.0/33", "proxy.local"}}, api.Deps{Bundle: b, DB: db}); err == nil ||
		!strings.Contains(err.Error(), "trusted_proxies[0]") || !strings.Contains(err.Error(), "trusted_proxies[1]") {
		t.Errorf("bad trusted_proxies: %v", err)
	}
}

// TestRequestIDAndBodyLimit: a client's well-formed request id is kept, a
// malformed one replaced; an oversized body is 413 in the API's shape.
func TestRequestIDAndBodyLimit(t *testing.T) {
	s := newServer(t, testBundle(t), openStore(t), nil)
	id := func(sent string) string {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Header.Set("X-Request-Id", sent)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Header().Get("X-Request-Id")
	}
	if got := id("abc-123.x_y"); got != "abc-123.x_y" {
		t.Errorf("well-formed id answered %q", got)
	}
	if got := id(strings.Repeat("a", 65)); len(got) != 24 {
		t.Errorf("overlong id answered %q, want a new one", got)
	}
	if got := id("a b"); got == "a b" || len(got) != 24 {
		t.Errorf("malformed id answered %q, want a new one", got)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/workorders", strings.NewReader(strings.Repeat("x", 2<<20)))
	req.Header.Set("Authorization", "Bearer "+token("acme-admin"))
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), `"code":"payload_too_large"`) {
		t.Errorf("2 MiB body: %d %s", rec.Code, rec.Body.String())
	}
}
