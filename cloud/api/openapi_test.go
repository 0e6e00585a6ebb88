package api_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/alarm/alarmhttp"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/command"
	"github.com/plantroom/plantroom/cloud/command/commandhttp"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/cloud/resident"
	"github.com/plantroom/plantroom/cloud/resident/residenthttp"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/cloud/workorder/workorderhttp"
	"github.com/plantroom/plantroom/config"
)

var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true}

// documented returns "METHOD /path" for every operation of the document,
// with {param} written :param as Echo does.
func documented(t *testing.T) map[string]bool {
	t.Helper()
	var doc struct {
		OpenAPI string                          `yaml:"openapi"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	// The whole document, so that a key defined twice anywhere (a schema
	// merged in twice) is an error, not a silently shadowed definition.
	var whole map[string]any
	if err := yaml.Unmarshal(api.OpenAPI, &whole); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.yaml: openapi %q, want 3.x", doc.OpenAPI)
	}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	out := map[string]bool{}
	for path, ops := range doc.Paths {
		for m := range ops {
			if httpMethods[m] {
				out[strings.ToUpper(m)+" "+param.ReplaceAllString(path, ":$1")] = true
			}
		}
	}
	return out
}

// deployedServer is the API as bin/cloud serves it: this package's routes
// and those of the alarm engine and the work-order desk.
func deployedServer(t *testing.T) *api.Server {
	t.Helper()
	b := testBundle(t)
	db := openStore(t, slices.Concat(alarm.Migrations(), workorder.Migrations(), resident.Migrations(), command.Migrations())...)
	feed := alarm.NewFeed(0, time.Now)
	desk, err := workorder.New(workorder.Config{Org: &b.Org, Rules: &b.Rules, Log: workorder.NewClickHouseLog(db.Conn()), Feed: feed, CheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := alarm.New(alarm.Config{Org: &b.Org, Rules: &b.Rules, Log: alarm.NewClickHouseLog(db.Conn()), Feed: feed,
		Sinks: []alarm.Sink{desk}, TickInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, b, db, nil)
	s.Register(alarmhttp.Routes(engine)...)
	s.Register(workorderhttp.Routes(desk, engine, photo.New(photo.Dir(t.TempDir()), 0))...)
	residents, err := resident.New(resident.Config{Org: &b.Org, Desk: desk, Log: resident.NewClickHouseLog(db.Conn())})
	if err != nil {
		t.Fatal(err)
	}
	s.Register(residenthttp.Routes(residents)...)
	s.Register(commandhttp.Routes(commandDesk(t, b, db, feed))...)
	return s
}

// TestOpenAPIMatchesRoutes fails when a served route is missing from
// openapi.yaml or the document lists a route nobody serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := deployedServer(t)
	doc := documented(t)
	served := map[string]bool{}
	for _, r := range s.Endpoints() {
		served[r.Method+" "+r.Path] = true
	}
	var missing, extra []string
	for r := range served {
		if !doc[r] {
			missing = append(missing, r)
		}
	}
	for r := range doc {
		if !served[r] {
			extra = append(extra, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, r := range missing {
		t.Errorf("route %s is served but not in openapi.yaml", r)
	}
	for _, r := range extra {
		t.Errorf("openapi.yaml lists %s, which no route serves", r)
	}
	if len(served) < 10 {
		t.Errorf("only %d routes served", len(served))
	}
}

func TestOpenAPIServed(t *testing.T) {
	s := newServer(t, testBundle(t), openStore(t), nil)
	rec := call(t, s.Handler(), "acme-tech1", http.MethodGet, "/api/v1/openapi.yaml")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "/api/v1/energy/monthly:") {
		t.Fatalf("GET /api/v1/openapi.yaml: %d %.200s", rec.Code, rec.Body.String())
	}
	if rec := call(t, s.Handler(), "", http.MethodGet, "/api/v1/openapi.yaml"); rec.Code != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", rec.Code)
	}
}

// commandDesk is the command desk as bin/cloud runs it, publishing to
// nowhere (the broker's part has its own tests).
func commandDesk(t *testing.T, b *config.Bundle, db *store.DB, feed *alarm.Feed) *command.Desk {
	t.Helper()
	d, err := command.NewDesk(command.Config{Org: &b.Org, Templates: b.Templates, Rules: &b.Rules, Log: command.NewClickHouseLog(db.Conn()),
		Publish: func(context.Context, string, []byte) error { return nil }, Feed: feed})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
