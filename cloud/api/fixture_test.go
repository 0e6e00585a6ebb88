package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/apitest"
	"github.com/plantroom/plantroom/internal/storetest"
)

// Two companies. acme has projects p1 (Asia/Shanghai, two buildings) and
// p2; beta has b1. Names are unique so a leak shows in any response body.
const testOrg = `
companies:
  - id: acme
    name: 安居物业
    projects:
      - id: p1
        name: 翠湖花园
        time_zone: Asia/Shanghai
        floor_area_m2: 10000
        tariff: test-tou
        buildings:
          - {id: p1-b1, name: 一号楼, floor_area_m2: 6000}
          - {id: p1-b2, name: 二号楼, floor_area_m2: 4000}
        gateways:
          - id: p1-gw
            name: 翠湖泵房
            building: p1-b1
            password_hash: "$2a$10$Xb1A.5dC7xR1wi/6LBMaHOwTt3KMzR6E0LWty71vEL.kGvrElAi0G"
            devices:
              - {id: p1-pump, name: 生活水泵, kind: pump, template: pump-vfd, address: "tcp://127.0.0.1:1", unit_id: 1}
              - {id: p1-elev, name: 客梯, kind: elevator, template: elevator, address: "tcp://127.0.0.1:2", unit_id: 1}
              - {id: p1-light, name: 公共照明, kind: lighting, template: lighting-panel, building: p1-b2, address: "tcp://127.0.0.1:3", unit_id: 1}
              - {id: p1-main, name: 总进线, kind: meter, template: sdm630, address: "tcp://127.0.0.1:4", unit_id: 1}
              - {id: p1-plug, name: 地库插座, kind: lighting, template: tasmota-plug, building: p1-b2, address: "mqtt:p1plug"}
      - id: p2
        name: 滨江中心
        time_zone: Asia/Shanghai
        floor_area_m2: 1000
        tariff: test-tou
        gateways:
          - id: p2-gw
            name: 滨江配电
            password_hash: "$2a$10$6HY5ZgKZfoAavdRx7yfRruMJ4IjbdyKz4jssTnBJNymMpAxhKW1qu"
            devices:
              - {id: p2-pump, name: 加压泵, kind: pump, template: pump-vfd, address: "tcp://127.0.0.1:5", unit_id: 1}
  - id: beta
    name: Beta Estates
    projects:
      - id: b1
        name: Harbour View
        time_zone: Europe/London
        floor_area_m2: 5000
        tariff: test-tou
        gateways:
          - id: b1-gw
            name: Harbour plant room
            password_hash: "$2a$10$6HY5ZgKZfoAavdRx7yfRruMJ4IjbdyKz4jssTnBJNymMpAxhKW1qu"
            devices:
              - {id: b1-pump, name: Harbour pump, kind: pump, template: pump-vfd, address: "tcp://127.0.0.1:6", unit_id: 1}
staff:
  - {id: acme-admin, name: A Admin, company: acme, role: hq_admin, token_hash: "HASH(acme-admin)"}
  - {id: acme-viewer, name: A Viewer, company: acme, role: hq_viewer, token_hash: "HASH(acme-viewer)"}
  - {id: acme-pm1, name: A PM1, company: acme, role: project_manager, projects: [p1], token_hash: "HASH(acme-pm1)"}
  - {id: acme-tech1, name: A Tech1, company: acme, role: technician, projects: [p1], token_hash: "HASH(acme-tech1)"}
  - {id: beta-admin, name: B Admin, company: beta, role: hq_admin, token_hash: "HASH(beta-admin)"}
  - {id: beta-pm, name: B PM, company: beta, role: project_manager, projects: [b1], token_hash: "HASH(beta-pm)"}
`

// testTariffs has a version change in the middle of July 2026 that adds a
// critical peak 12:00–14:00 in July and August:
//
//	until 15 July: valley 00–08 0.30, peak 08–12 1.00, flat 12–18 0.60, peak 18–22, valley 22–24
//	from 16 July:  valley 00–08 0.35, peak 08–12 1.20, critical peak 12–14 1.50,
//	               flat 14–18 0.70, peak 18–22, valley 22–24
const testTariffs = `
tariffs:
  - id: test-tou
    name: 测试分时电价
    currency: CNY
    versions:
      - effective_from: "2026-01-01"
        prices: {peak: 1.0, flat: 0.6, valley: 0.3}
        seasons:
          - name: all-year
            months: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
            periods:
              - {period: valley, from: "00:00", to: "08:00"}
              - {period: peak,   from: "08:00", to: "12:00"}
              - {period: flat,   from: "12:00", to: "18:00"}
              - {period: peak,   from: "18:00", to: "22:00"}
              - {period: valley, from: "22:00", to: "24:00"}
      - effective_from: "2026-07-16"
        prices: {critical_peak: 1.5, peak: 1.2, flat: 0.7, valley: 0.35}
        seasons:
          - name: summer
            months: [7, 8]
            periods:
              - {period: valley,        from: "00:00", to: "08:00"}
              - {period: peak,          from: "08:00", to: "12:00"}
              - {period: critical_peak, from: "12:00", to: "14:00"}
              - {period: flat,          from: "14:00", to: "18:00"}
              - {period: peak,          from: "18:00", to: "22:00"}
              - {period: valley,        from: "22:00", to: "24:00"}
          - name: rest
            months: [1, 2, 3, 4, 5, 6, 9, 10, 11, 12]
            periods:
              - {period: valley, from: "00:00", to: "08:00"}
              - {period: peak,   from: "08:00", to: "12:00"}
              - {period: flat,   from: "12:00", to: "18:00"}
              - {period: peak,   from: "18:00", to: "22:00"}
              - {period: valley, from: "22:00", to: "24:00"}
`

// token is the bearer token of a fixture staff member.
func token(staff string) string { return "tok-" + staff }

func testBundle(t testing.TB) *config.Bundle {
	t.Helper()
	org := testOrg
	for _, s := range []string{"acme-admin", "acme-viewer", "acme-pm1", "acme-tech1", "beta-admin", "beta-pm"} {
		org = strings.ReplaceAll(org, "HASH("+s+")", api.HashToken(token(s)))
	}
	b := &config.Bundle{}
	if err := config.Decode([]byte(org), &b.Org); err != nil {
		t.Fatalf("org: %v", err)
	}
	if err := config.Decode([]byte(testTariffs), &b.Tariffs); err != nil {
		t.Fatalf("tariffs: %v", err)
	}
	ts, err := config.LoadTemplates("../../configs/templates")
	if err != nil {
		t.Fatal(err)
	}
	b.Templates = ts
	var p config.Problems
	b.CheckRefs(&p)
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	return b
}

// openStore gives a fresh, migrated database on the test ClickHouse.
func openStore(t testing.TB, extra ...store.Migration) *store.DB {
	t.Helper()
	return storetest.Open(t, extra...)
}

// testClock is the fixture's "now": July 2026 has ended.
var testClock = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("PLANTROOM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newServer(t testing.TB, b *config.Bundle, db api.Database, mod func(*api.Deps)) *api.Server {
	t.Helper()
	deps := api.Deps{Bundle: b, DB: db, Logger: testLogger(t), Now: func() time.Time { return testClock }}
	if mod != nil {
		mod(&deps)
	}
	s, err := api.New(api.Config{Listen: "127.0.0.1:0"}, deps)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// call performs a request against h as staff ("" for no token).
func call(t testing.TB, h http.Handler, staff, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	tok := ""
	if staff != "" {
		tok = token(staff)
	}
	return apitest.Call(t, h, method, target, tok, nil)
}

// decode unmarshals a JSON response, failing on a non-200 status.
func decode(t testing.TB, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	apitest.Expect(t, rec, http.StatusOK, v)
}
