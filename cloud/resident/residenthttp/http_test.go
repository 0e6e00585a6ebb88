package residenthttp

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/cloud/resident"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/cloud/workorder/workorderhttp"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/apitest"
	"github.com/plantroom/plantroom/internal/fakes"
	"github.com/plantroom/plantroom/internal/storetest"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

// monday10 is Monday 2025-03-03 10:00 in Shanghai: tech-garden-1's shift.
var monday10 = time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai)

// Demo tokens (README).
var tokens = map[string]string{
	"hq-admin": "demo-hq-admin", "hq-viewer": "demo-hq-viewer", "pm-garden": "demo-pm-garden", "pm-tower": "demo-pm-tower",
	"tech-garden-1": "demo-tech-garden-1", "tech-garden-2": "demo-tech-garden-2", "tech-tower-1": "demo-tech-tower-1",
}

// rig is the API with the resident routes as cmd/cloud registers them,
// over a real ClickHouse, the real work-order desk and a settable clock.
type rig struct {
	t      *testing.T
	b      *config.Bundle
	clock  *fakes.Clock
	db     *store.DB
	desk   *workorder.Desk
	svc    *resident.Service
	h      http.Handler
	limits resident.Limits
	photos *photo.Photos // kept across restarts, like the photos directory
}

func newRig(t *testing.T, limits resident.Limits) *rig {
	t.Helper()
	b, err := config.LoadBundle("../../../configs/org.yaml", "../../../configs/tariffs.yaml", "../../../configs/templates", "../../../configs/rules.yaml")
	if err != nil {
		t.Fatalf("load demo configuration: %v", err)
	}
	db := storetest.Open(t, slices.Concat(alarm.Migrations(), workorder.Migrations(), resident.Migrations())...)
	r := &rig{t: t, b: b, clock: fakes.NewClock(monday10), db: db, limits: limits,
		photos: photo.New(photo.Dir(t.TempDir()), photo.DefaultMaxBytes)}
	r.start()
	return r
}

// start (re)builds the desk, the service and the API over the rig's
// database, as a restarted process would.
func (r *rig) start() {
	t := r.t
	t.Helper()
	var err error
	r.desk, err = workorder.New(workorder.Config{Org: &r.b.Org, Rules: &r.b.Rules, Log: workorder.NewClickHouseLog(r.db.Conn()),
		Feed: alarm.NewFeed(0, r.clock.Now), Now: r.clock.Now, CheckInterval: time.Hour, Photos: r.photos})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.desk.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.desk.Stop)
	r.svc, err = resident.New(resident.Config{Org: &r.b.Org, Desk: r.desk, Log: resident.NewClickHouseLog(r.db.Conn()),
		Limits: r.limits, Now: r.clock.Now, RetryInterval: time.Hour, Photos: r.photos})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.svc.Stop)
	srv, err := api.New(api.Config{Listen: "127.0.0.1:0"}, api.Deps{Bundle: r.b, DB: r.db, Now: r.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// The work-order routes as cmd/cloud registers them (no alarm engine:
	// the routes used here do not ask it): staff read the order's photos.
	srv.Register(Routes(r.svc)...)
	srv.Register(workorderhttp.Routes(r.desk, nil, r.photos)...)
	r.h = srv.Handler()
}

// call makes a request as staff ("" for a resident) from addr with an
// optional JSON body.
func (r *rig) call(staff, addr, method, target string, body any) *httptest.ResponseRecorder {
	r.t.Helper()
	return apitest.Call(r.t, r.h, method, target, tokens[staff], body, apitest.From(addr))
}

func (r *rig) decode(rec *httptest.ResponseRecorder, want int, v any) {
	r.t.Helper()
	apitest.Expect(r.t, rec, want, v)
}

func (r *rig) link(project string) string {
	r.t.Helper()
	var l resident.Link
	r.decode(r.call("pm-"+project, "10.0.0.1", http.MethodGet, "/api/v1/projects/"+project+"/resident-link", nil), http.StatusOK, &l)
	return l.Token
}

func (r *rig) submit(link, addr string, sub resident.Submission) *httptest.ResponseRecorder {
	r.t.Helper()
	return r.call("", addr, http.MethodPost, "/api/v1/public/requests/"+link, sub)
}

func (r *rig) orders() []workorder.WorkOrder {
	return mustOrders(r.desk.List(context.Background(), alarm.Viewer{Role: config.RoleHQAdmin, Company: "acme"}, workorder.Filter{}))
}

func (r *rig) move(staff, id, to string) {
	r.t.Helper()
	i := slices.IndexFunc(r.b.Org.Staff, func(s config.Staff) bool { return s.ID == staff })
	s := r.b.Org.Staff[i]
	v := alarm.Viewer{Staff: s.ID, Role: s.Role, Company: s.Company, Projects: s.Projects}
	if _, err := r.desk.Transition(context.Background(), v, id, workorder.TransitionRequest{To: to}); err != nil {
		r.t.Fatalf("%s moves %s to %s: %v", staff, id, to, err)
	}
}

const hostile = `<script>alert("x")</script> =cmd|' /C calc'!A0 **bold** 13812345678`

// TestResidentRequestLoop: a resident files through the project's link,
// the desk dispatches the on-duty technician, staff see the phone as the
// policy says, the tracking token follows the order, the rating is taken
// once after resolution, HQ statistics count it, a rotated link stops
// working, and all of it survives a restart.
func TestResidentRequestLoop(t *testing.T) {
	r := newRig(t, resident.Limits{})
	link := r.link("garden")
	if len(link) < 16 {
		t.Fatalf("link token %q is too short to be unguessable", link)
	}
	// Who may see and rotate the link: the project's manager and HQ admin.
	for staff, want := range map[string]int{"hq-admin": 200, "hq-viewer": 403, "tech-garden-1": 403, "pm-tower": 404} {
		if rec := r.call(staff, "10.0.0.1", http.MethodGet, "/api/v1/projects/garden/resident-link", nil); rec.Code != want {
			t.Errorf("%s reads garden's link: %d, want %d: %s", staff, rec.Code, want, rec.Body)
		}
	}
	var form Form
	r.decode(r.call("", "10.0.0.2", http.MethodGet, "/api/v1/public/requests/"+link, nil), http.StatusOK, &form)
	if form.Project != "garden" || form.ProjectName == "" || !slices.Equal(form.Categories, resident.Categories) {
		t.Errorf("form = %+v", form)
	}

	// File a request with hostile text and a phone number.
	var got Submitted
	r.decode(r.submit(link, "10.0.0.2", resident.Submission{Category: "elevator", Location: "2号楼1单元 <b>", Description: hostile, Phone: "138 1234 5678"}),
		http.StatusCreated, &got)
	if got.Status != resident.StatusAssigned || len(got.Token) < 20 || got.Path != "/t/"+got.Token {
		t.Fatalf("receipt = %+v", got)
	}
	orders := r.orders()
	if len(orders) != 1 {
		t.Fatalf("%d work orders, want 1", len(orders))
	}
	w := orders[0]
	if w.Source != workorder.SourceResident || w.Assignee != "tech-garden-1" || w.Category != "elevator" || w.Skill != "elevator" || w.CreatedBy != workorder.Resident {
		t.Errorf("work order = %+v, want a resident's elevator order for the on-duty tech-garden-1", w)
	}
	if strings.Contains(w.Title+w.Description, "138 1234 5678") {
		t.Errorf("the phone is in the work order: %q / %q", w.Title, w.Description)
	}
	track := func(want string) resident.Tracking {
		t.Helper()
		var tr resident.Tracking
		r.decode(r.call("", "10.0.0.3", http.MethodGet, "/api/v1/public/track/"+got.Token, nil), http.StatusOK, &tr)
		if tr.Status != want {
			t.Fatalf("tracking status %q, want %q", tr.Status, want)
		}
		return tr
	}
	tr := track(resident.StatusAssigned)
	if tr.Description != hostile || tr.Phone != "138******5678" || tr.ProjectName != form.ProjectName || tr.CanRate {
		t.Errorf("tracking = %+v", tr)
	}
	if rec := r.call("", "10.0.0.3", http.MethodGet, "/api/v1/public/track/"+got.Token+"x", nil); rec.Code != http.StatusNotFound {
		t.Errorf("a wrong tracking token: %d, want 404", rec.Code)
	}

	// Phones: whole for the manager and the assigned technician, masked
	// for HQ and in lists; the request invisible to others.
	var list struct{ Requests []resident.Request }
	r.decode(r.call("pm-garden", "10.0.0.1", http.MethodGet, "/api/v1/resident-requests?project=garden", nil), http.StatusOK, &list)
	if len(list.Requests) != 1 || list.Requests[0].Phone != "138******5678" || !list.Requests[0].PhoneMasked || list.Requests[0].WorkOrder != w.ID {
		t.Fatalf("pm's list = %+v", list.Requests)
	}
	id := list.Requests[0].ID
	for staff, want := range map[string]string{"pm-garden": "138 1234 5678", "tech-garden-1": "138 1234 5678", "hq-admin": "138******5678", "hq-viewer": "138******5678", "tech-garden-2": "", "pm-tower": ""} {
		rec := r.call(staff, "10.0.0.1", http.MethodGet, "/api/v1/resident-requests/"+id, nil)
		if want == "" {
			if rec.Code != http.StatusNotFound {
				t.Errorf("%s reads the request: %d, want 404", staff, rec.Code)
			}
			continue
		}
		var one resident.Request
		r.decode(rec, http.StatusOK, &one)
		if one.Phone != want || one.PhoneMasked != (want != "138 1234 5678") || one.State != workorder.StateAssigned {
			t.Errorf("%s sees phone %q (masked %v, state %s), want %q", staff, one.Phone, one.PhoneMasked, one.State, want)
		}
	}
	r.decode(r.call("tech-garden-1", "10.0.0.1", http.MethodGet, "/api/v1/resident-requests?workorder="+w.ID, nil), http.StatusOK, &list)
	if len(list.Requests) != 1 || list.Requests[0].Phone != "138******5678" {
		t.Errorf("tech's list by order = %+v, want the request, phone masked", list.Requests)
	}
	r.decode(r.call("tech-garden-2", "10.0.0.1", http.MethodGet, "/api/v1/resident-requests", nil), http.StatusOK, &list)
	if len(list.Requests) != 0 {
		t.Errorf("tech-garden-2 lists %d requests, want none", len(list.Requests))
	}

	// No rating before the work is resolved.
	if rec := r.call("", "10.0.0.3", http.MethodPost, "/api/v1/public/track/"+got.Token+"/rating", resident.Rating{Rating: 5}); rec.Code != http.StatusConflict {
		t.Errorf("rating before resolution: %d, want 409: %s", rec.Code, rec.Body)
	}
	r.clock.Set(monday10.Add(10 * time.Minute))
	r.move("tech-garden-1", w.ID, workorder.StateAccepted)
	r.clock.Set(monday10.Add(20 * time.Minute))
	r.move("tech-garden-1", w.ID, workorder.StateInProgress)
	track(resident.StatusInProgress)
	r.clock.Set(monday10.Add(70 * time.Minute))
	r.move("tech-garden-1", w.ID, workorder.StateResolved)
	if tr := track(resident.StatusResolved); !tr.CanRate || !tr.ResolvedAt.Equal(monday10.Add(70*time.Minute)) {
		t.Errorf("after resolution: %+v, want can_rate and resolved_at", tr)
	}
	for _, bad := range []resident.Rating{{Rating: 0}, {Rating: 6}, {Rating: 3, Comment: strings.Repeat("好", resident.MaxComment+1)}} {
		if rec := r.call("", "10.0.0.3", http.MethodPost, "/api/v1/public/track/"+got.Token+"/rating", bad); rec.Code != http.StatusBadRequest {
			t.Errorf("rating %d with %d characters: %d, want 400", bad.Rating, len([]rune(bad.Comment)), rec.Code)
		}
	}
	var rated resident.Tracking
	r.decode(r.call("", "10.0.0.3", http.MethodPost, "/api/v1/public/track/"+got.Token+"/rating", resident.Rating{Rating: 4, Comment: "快 <i>"}), http.StatusOK, &rated)
	if rated.Rating != 4 || rated.Comment != "快 <i>" || rated.CanRate {
		t.Errorf("after rating: %+v", rated)
	}
	rec := r.call("", "10.0.0.3", http.MethodPost, "/api/v1/public/track/"+got.Token+"/rating", resident.Rating{Rating: 1})
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "rated already") {
		t.Errorf("rating twice: %d %s, want 409 rated already", rec.Code, rec.Body)
	}

	// A second request, not resolved, and HQ statistics.
	r.clock.Set(monday10.Add(80 * time.Minute))
	r.decode(r.submit(link, "10.0.0.4", resident.Submission{Category: "other", Location: "地库", Description: "门禁坏了"}), http.StatusCreated, nil)
	var st resident.Monthly
	r.decode(r.call("hq-admin", "10.0.0.1", http.MethodGet, "/api/v1/stats/residents?month=2025-03", nil), http.StatusOK, &st)
	var garden *resident.ProjectStats
	for i := range st.Projects {
		if st.Projects[i].Project == "garden" {
			garden = &st.Projects[i]
		}
	}
	if garden == nil || garden.Requests != 2 || garden.ByCategory["elevator"] != 1 || garden.ByCategory["other"] != 1 || garden.Resolved != 1 ||
		garden.Rated != 1 || garden.Satisfaction == nil || *garden.Satisfaction != 4 || garden.Ratings != [5]int{0, 0, 0, 1, 0} ||
		garden.MeanTimeToRespondMin == nil || *garden.MeanTimeToRespondMin != 10 || garden.MeanTimeToResolveMin == nil || *garden.MeanTimeToResolveMin != 70 {
		t.Errorf("garden statistics = %+v", garden)
	}
	if st.Total.Requests != 2 || st.Total.Satisfaction == nil || *st.Total.Satisfaction != 4 {
		t.Errorf("total = %+v", st.Total)
	}
	for staff, want := range map[string]int{"hq-viewer": 200, "pm-garden": 403, "tech-garden-1": 403} {
		if rec := r.call(staff, "10.0.0.1", http.MethodGet, "/api/v1/stats/residents?month=2025-03", nil); rec.Code != want {
			t.Errorf("%s reads the statistics: %d, want %d", staff, rec.Code, want)
		}
	}

	// Rotating: only the manager (or HQ admin); the old link is dead at once.
	for _, staff := range []string{"tech-garden-1", "hq-viewer"} {
		if rec := r.call(staff, "10.0.0.1", http.MethodPost, "/api/v1/projects/garden/resident-link", nil); rec.Code != http.StatusForbidden {
			t.Errorf("%s rotates: %d, want 403", staff, rec.Code)
		}
	}
	var rotated resident.Link
	r.decode(r.call("pm-garden", "10.0.0.1", http.MethodPost, "/api/v1/projects/garden/resident-link", nil), http.StatusOK, &rotated)
	if rotated.Token == link || rotated.CreatedBy != "pm-garden" || rotated.Path != "/r/"+rotated.Token {
		t.Fatalf("rotated link = %+v (old %s)", rotated, link)
	}
	if rec := r.call("", "10.0.0.5", http.MethodGet, "/api/v1/public/requests/"+link, nil); rec.Code != http.StatusNotFound {
		t.Errorf("the old link's form: %d, want 404", rec.Code)
	}
	if rec := r.submit(link, "10.0.0.5", resident.Submission{Category: "other", Location: "x", Description: "y"}); rec.Code != http.StatusNotFound {
		t.Errorf("filing through the old link: %d, want 404", rec.Code)
	}
	r.decode(r.call("", "10.0.0.5", http.MethodGet, "/api/v1/public/requests/"+rotated.Token, nil), http.StatusOK, nil)

	// After a restart: the same link, tracking and rating; the old link
	// still dead.
	r.start()
	if l := r.link("garden"); l != rotated.Token {
		t.Errorf("after restart the link is %q, want %q", l, rotated.Token)
	}
	if rec := r.call("", "10.0.0.5", http.MethodGet, "/api/v1/public/requests/"+link, nil); rec.Code != http.StatusNotFound {
		t.Errorf("after restart the old link's form: %d, want 404", rec.Code)
	}
	if tr := track(resident.StatusResolved); tr.Rating != 4 || tr.CanRate || tr.Comment != "快 <i>" {
		t.Errorf("after restart: %+v", tr)
	}
	if rec := r.call("", "10.0.0.3", http.MethodPost, "/api/v1/public/track/"+got.Token+"/rating", resident.Rating{Rating: 1}); rec.Code != http.StatusConflict {
		t.Errorf("rating again after restart: %d, want 409", rec.Code)
	}
}

// TestResidentAbuse: the honeypot, the field and body limits, JSON only,
// and the rate limits per address and per project with their message and
// Retry-After, which lift when the window has passed.
func TestResidentAbuse(t *testing.T) {
	r := newRig(t, resident.Limits{PerAddress: 2, PerProject: 4, Window: config.D(time.Hour)})
	link := r.link("garden")
	ok := resident.Submission{Category: "pump", Location: "3号楼", Description: "没有水"}
	count := func() int { return len(r.orders()) }

	// Honeypot: refused, no order.
	bot := ok
	bot.Website = "http://spam.example"
	rec := r.submit(link, "10.1.0.1", bot)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"refused"`) || count() != 0 {
		t.Fatalf("honeypot: %d %s, %d orders", rec.Code, rec.Body, count())
	}
	// Fields.
	for name, sub := range map[string]resident.Submission{
		"no category":      {Location: "a", Description: "b"},
		"bad category":     {Category: "meter", Location: "a", Description: "b"},
		"no location":      {Category: "pump", Description: "b"},
		"no description":   {Category: "pump", Location: "a"},
		"long description": {Category: "pump", Location: "a", Description: strings.Repeat("水", resident.MaxDescription+1)},
		"long location":    {Category: "pump", Location: strings.Repeat("楼", resident.MaxLocation+1), Description: "b"},
		"control char":     {Category: "pump", Location: "a", Description: "b\x1b[31m"},
		"bad phone":        {Category: "pump", Location: "a", Description: "b", Phone: "call me"},
	} {
		if rec := r.submit(link, "10.1.0.2", sub); rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400: %s", name, rec.Code, rec.Body)
		}
	}
	// Body: JSON only, bounded.
	req := httptest.NewRequest(http.MethodPost, "/api/v1/public/requests/"+link, strings.NewReader("category=pump&location=a&description=b"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rw := httptest.NewRecorder()
	r.h.ServeHTTP(rw, req)
	if rw.Code != http.StatusUnsupportedMediaType {
		t.Errorf("a form post: %d, want 415", rw.Code)
	}
	req = httptest.NewRequest(http.MethodPost, "/api/v1/public/requests/"+link,
		strings.NewReader(`{"category":"pump","location":"a","description":"`+strings.Repeat("a", MaxBody)+`"}`))
	req.Header.Set("Content-Type", "application/json")
	rw = httptest.NewRecorder()
	r.h.ServeHTTP(rw, req)
	if rw.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a %d-byte body: %d, want 413", MaxBody, rw.Code)
	}
	if count() != 0 {
		t.Fatalf("%d orders from refused requests", count())
	}

	// Per address: 2 an hour.
	for i := range 2 {
		r.decode(r.submit(link, "10.1.0.3", ok), http.StatusCreated, nil)
		if count() != i+1 {
			t.Fatalf("%d orders after %d requests", count(), i+1)
		}
	}
	r.clock.Set(monday10.Add(15 * time.Minute))
	rec = r.submit(link, "10.1.0.3", ok)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "2700" ||
		!strings.Contains(rec.Body.String(), "more than 2 requests from this address within 1h0m0s; try again in 45m0s") {
		t.Errorf("third from one address: %d Retry-After %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	// Per project: 4 an hour, whatever the address.
	r.decode(r.submit(link, "10.1.0.4", ok), http.StatusCreated, nil)
	r.decode(r.submit(link, "10.1.0.5", ok), http.StatusCreated, nil)
	rec = r.submit(link, "10.1.0.6", ok)
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "from this project") {
		t.Errorf("fifth into the project: %d %s", rec.Code, rec.Body)
	}
	// Another project has its own count.
	r.decode(r.submit(r.link("tower"), "10.1.0.6", ok), http.StatusCreated, nil)
	if count() != 5 {
		t.Fatalf("%d orders, want 5", count())
	}
	// The window passes: taken again.
	r.clock.Set(monday10.Add(time.Hour + time.Second))
	r.decode(r.submit(link, "10.1.0.3", ok), http.StatusCreated, nil)
	if count() != 6 {
		t.Errorf("%d orders, want 6", count())
	}
}

func TestMaskPhone(t *testing.T) {
	for in, want := range map[string]string{"": "", "13812345678": "138****5678", "+86 138 1234 5678": "+86**********5678", "12345": "***45", "12": "**"} {
		if got := resident.MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustOrders(ws []workorder.WorkOrder, err error) []workorder.WorkOrder {
	if err != nil {
		panic(err)
	}
	return ws
}
