package workorderhttp

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/alarm/alarmhttp"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/apitest"
	"github.com/plantroom/plantroom/internal/fakes"
	"github.com/plantroom/plantroom/internal/storetest"
	"github.com/plantroom/plantroom/protocol"
)

// apiRig is the cloud's API with the alarm and work-order routes
// registered as cmd/cloud registers them, over a real ClickHouse, for the
// demo organisation plus a second company (beta) that must never show.
type apiRig struct {
	t      *testing.T
	b      *config.Bundle
	clock  *fakes.Clock
	feed   *alarm.Feed
	engine *alarm.Engine
	desk   *workorder.Desk
	srv    *api.Server
	h      http.Handler
	db     *store.DB
	photos *photo.Photos
}

// Demo tokens (README) and the beta company's.
var tokens = map[string]string{
	"hq-admin": "demo-hq-admin", "hq-viewer": "demo-hq-viewer", "pm-garden": "demo-pm-garden", "pm-tower": "demo-pm-tower",
	"tech-garden-1": "demo-tech-garden-1", "tech-garden-2": "demo-tech-garden-2", "tech-tower-1": "demo-tech-tower-1",
	"beta-admin": "beta-admin-token", "beta-tech": "beta-tech-token",
}

func bundleWithBeta(t testing.TB) *config.Bundle {
	b := loadBundle(t)
	loc, _ := time.LoadLocation("Europe/London")
	b.Org.Companies = append(b.Org.Companies, config.Company{ID: "beta", Name: "Beta Estates", Projects: []config.Project{{
		ID: "harbour", Name: "Harbour View", TimeZone: "Europe/London", Location: loc, FloorAreaM2: 5000, Tariff: "sh-general",
		Gateways: []config.Gateway{{ID: "gw-harbour", Devices: []config.Device{
			{ID: "harbour-pump", Name: "Harbour pump", Kind: config.KindPump, Template: "pump-vfd", PollInterval: config.D(10 * time.Second)},
		}}},
	}}})
	b.Org.Staff = append(b.Org.Staff,
		config.Staff{ID: "beta-admin", Company: "beta", Role: config.RoleHQAdmin, TokenHash: api.HashToken(tokens["beta-admin"])},
		config.Staff{ID: "beta-tech", Company: "beta", Role: config.RoleTechnician, Projects: []string{"harbour"}, Skills: []string{"pump"},
			OnDuty:    []config.Shift{{Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, From: "00:00", To: "24:00"}},
			TokenHash: api.HashToken(tokens["beta-tech"])})
	return b
}

func openDB(t testing.TB) *store.DB {
	t.Helper()
	return storetest.Open(t, append(alarm.Migrations(), workorder.Migrations()...)...)
}

func newAPIRig(t *testing.T) *apiRig {
	t.Helper()
	b := bundleWithBeta(t)
	db := openDB(t)
	r := &apiRig{t: t, b: b, clock: fakes.NewClock(monday10), db: db, photos: photo.New(photo.Dir(t.TempDir()), 64<<10)}
	r.feed = alarm.NewFeed(0, r.clock.Now)
	var err error
	r.desk, err = workorder.New(workorder.Config{Org: &b.Org, Rules: &b.Rules, Log: workorder.NewClickHouseLog(db.Conn()), Feed: r.feed, Now: r.clock.Now,
		CheckInterval: time.Hour, Photos: r.photos})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.desk.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.desk.Stop)
	alog := alarm.NewClickHouseLog(db.Conn())
	r.engine, err = alarm.New(alarm.Config{Org: &b.Org, Rules: &b.Rules, Log: alog, Feed: r.feed, Sinks: []alarm.Sink{r.desk},
		Now: r.clock.Now, TickInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.engine.Stop)
	r.srv, err = api.New(api.Config{Listen: "127.0.0.1:0"}, api.Deps{Bundle: b, DB: db, Now: r.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r.srv.Register(alarmhttp.Routes(r.engine)...)
	r.srv.Register(Routes(r.desk, r.engine, r.photos)...)
	r.h = r.srv.Handler()
	return r
}

// read feeds readings of one gateway's devices at monday10+at.
func (r *apiRig) read(gateway string, at time.Duration, rs ...protocol.Reading) {
	r.t.Helper()
	gw, ok := r.b.Org.FindGateway(gateway)
	if !ok {
		r.t.Fatalf("no gateway %q", gateway)
	}
	ts := monday10.Add(at)
	r.clock.Set(ts)
	for i := range rs {
		rs[i].TS = ts.UnixMilli()
	}
	r.engine.ObserveBatch(context.Background(), gw, &protocol.Batch{Epoch: 1, Gateway: gateway, Seq: uint64(at), SentAt: ts.UnixMilli(), Readings: rs}, ts)
}

func reading(device, metric string, v float64) protocol.Reading {
	return protocol.Reading{Device: device, Metric: metric, Value: v}
}

// call makes a request as staff ("" for none) with an optional JSON body.
func (r *apiRig) call(staff, method, target string, body any) *httptest.ResponseRecorder {
	r.t.Helper()
	return apitest.Call(r.t, r.h, method, target, tokens[staff], body)
}

func (r *apiRig) decode(rec *httptest.ResponseRecorder, want int, v any) {
	r.t.Helper()
	apitest.Expect(r.t, rec, want, v)
}

// raiseDemoAlarms raises a pump alarm in garden (order to tech-garden-1),
// one in tower (tech-tower-1) and one at beta's harbour (beta-tech).
func (r *apiRig) raiseDemoAlarms() {
	r.read("gw-garden-1", 0, reading("garden-pump-1", "fault_code", 3))
	r.read("gw-tower-1", time.Second, reading("tower-pump-1", "fault_code", 1))
	r.read("gw-harbour", 2*time.Second, reading("harbour-pump", "fault_code", 4))
}

func (r *apiRig) alarmOf(device string) alarm.Alarm {
	r.t.Helper()
	for _, a := range mustAlarms(r.engine.Alarms(context.Background(), alarm.Viewer{Role: config.RoleHQAdmin, Company: companyOf(device)}, alarm.Filter{Device: device})) {
		return a
	}
	r.t.Fatalf("no alarm on %s", device)
	return alarm.Alarm{}
}

func (r *apiRig) orderOf(device string) workorder.WorkOrder {
	r.t.Helper()
	for _, w := range mustOrders(r.desk.List(context.Background(), alarm.Viewer{Role: config.RoleHQAdmin, Company: companyOf(device)}, workorder.Filter{Device: device})) {
		return w
	}
	r.t.Fatalf("no order on %s", device)
	return workorder.WorkOrder{}
}

func companyOf(device string) string {
	if device == "harbour-pump" {
		return "beta"
	}
	return "acme"
}

func mustOrders(ws []workorder.WorkOrder, err error) []workorder.WorkOrder {
	if err != nil {
		panic(err)
	}
	return ws
}

func mustAlarms(as []alarm.Alarm, err error) []alarm.Alarm {
	if err != nil {
		panic(err)
	}
	return as
}
