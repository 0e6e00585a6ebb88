package workorder

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/photo"
)

func viewerOf(t *testing.T, staff string) alarm.Viewer {
	t.Helper()
	for _, v := range []alarm.Viewer{techGarden1, techGarden2, techTower} {
		if v.Staff == staff {
			return v
		}
	}
	t.Fatalf("no test viewer %q", staff)
	return alarm.Viewer{}
}

// Scanning in on site records "arrived" once per assignment: the real
// response time, on time for the SLA (no escalation), kept over a restart,
// cleared when the order changes hands.
func TestArriveOnSite(t *testing.T) {
	r := newRig(t, nil, nil)
	ctx := context.Background()
	w := r.orderFor(r.raise("garden-elevator-1", "elevator-trapped", monday10))
	if w.State != StateAssigned || w.Assignee == "" {
		t.Fatalf("order %+v not assigned", w)
	}
	tech := viewerOf(t, w.Assignee)
	other := techGarden1
	if other.Staff == tech.Staff {
		other = techGarden2
	}
	for _, c := range []struct {
		v    alarm.Viewer
		want error
	}{{other, ErrNotFound}, {techTower, ErrNotFound}, {pmGarden, ErrForbidden}, {hqViewer, ErrForbidden}} {
		if _, _, err := r.d.Arrive(ctx, c.v, w.ID); !errors.Is(err, c.want) {
			t.Errorf("%s arrives: %v, want %v", c.v.Staff, err, c.want)
		}
	}
	r.clock.Set(monday10.Add(20 * time.Minute))
	got, arrived, err := r.d.Arrive(ctx, tech, w.ID)
	if err != nil || !arrived {
		t.Fatalf("assignee arrives: %v %v", arrived, err)
	}
	last := got.History[len(got.History)-1]
	if !got.ArrivedAt.Equal(monday10.Add(20*time.Minute)) || got.State != StateAssigned ||
		last.Action != ActionArrive || last.Who != tech.Staff || last.From != StateAssigned || last.To != StateAssigned {
		t.Fatalf("after arrival: arrived_at %s state %s, last event %+v", got.ArrivedAt, got.State, last)
	}
	r.clock.Set(monday10.Add(25 * time.Minute))
	again, arrived, err := r.d.Arrive(ctx, tech, w.ID)
	if err != nil || arrived || len(again.History) != len(got.History) || !again.ArrivedAt.Equal(got.ArrivedAt) {
		t.Fatalf("second scan: arrived %v, %d events (want %d), %v", arrived, len(again.History), len(got.History), err)
	}
	// On site at 20 of 30 minutes: no escalation, SLA met.
	r.d.checkSLA(ctx, monday10.Add(45*time.Minute))
	now, _ := r.d.Get(context.Background(), hqAdmin, w.ID)
	if met, ok := now.SLAMet(monday10.Add(45 * time.Minute)); now.Escalation != EscalationNone || !met || !ok {
		t.Errorf("arrived in time: escalation %d, SLA met %v decided %v", now.Escalation, met, ok)
	}
	st, err := r.d.MonthlyStats(context.Background(), hqAdmin, "2025-03", nil, monday10.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Projects {
		if p.Project == "garden" && (p.MeanTimeToArriveMin == nil || *p.MeanTimeToArriveMin != 20) {
			t.Errorf("garden mean time to arrive %v, want 20 minutes", p.MeanTimeToArriveMin)
		}
	}
	// A restart replays the arrival; a later step keeps it.
	if _, err := r.move(tech, w.ID, StateAccepted); err != nil {
		t.Fatal(err)
	}
	r.d.Stop()
	r.start()
	back, err := r.d.Get(context.Background(), hqAdmin, w.ID)
	if err != nil || !back.ArrivedAt.Equal(got.ArrivedAt) || back.State != StateAccepted {
		t.Fatalf("after restart: arrived_at %s state %s %v", back.ArrivedAt, back.State, err)
	}
	// Reassigned: the new assignee has yet to arrive, also after a restart.
	if _, err := r.d.Transition(ctx, pmGarden, w.ID, TransitionRequest{To: StateAssigned, Assignee: other.Staff}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		re, _ := r.d.Get(context.Background(), hqAdmin, w.ID)
		if !re.ArrivedAt.IsZero() {
			t.Errorf("reassigned (restart %d): arrived_at %s, want none", i, re.ArrivedAt)
		}
		r.d.Stop()
		r.start()
	}
	if _, arrived, err := r.d.Arrive(ctx, other, w.ID); err != nil || !arrived {
		t.Errorf("new assignee arrives: %v %v", arrived, err)
	}
	// Resolved orders take no arrival.
	for _, to := range []string{StateAccepted, StateInProgress, StateResolved} {
		if _, err := r.move(other, w.ID, to); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := r.d.Arrive(ctx, other, w.ID); !errors.Is(err, ErrInvalid) {
		t.Errorf("arrival at a resolved order: %v, want ErrInvalid", err)
	}
}

func smallJPEG(t *testing.T, shade uint8) []byte {
	img := image.NewGray(image.Rect(0, 0, 40, 30))
	for i := range img.Pix {
		img.Pix[i] = shade
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Photos on a step: stored ones only, at most MaxPhotos, recorded on the
// event with their description, and back from ClickHouse after a restart
// (beside a plain photo reference).
func TestStepPhotosStored(t *testing.T) {
	conn := migrate(t)
	b := loadBundle(t)
	clock := monday10
	now := func() time.Time { return clock }
	photos := photo.New(photo.Dir(t.TempDir()), 0)
	ctx := context.Background()
	start := func() *Desk {
		d, err := New(Config{Org: &b.Org, Rules: &b.Rules, Log: NewClickHouseLog(conn), Feed: alarm.NewFeed(0, now), Now: now,
			CheckInterval: time.Hour, Photos: photos})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Stop)
		return d
	}
	d := start()
	w, err := d.Create(ctx, pmGarden, NewOrder{Project: "garden", Device: "garden-pump-1", Title: "漏水 leak"})
	if err != nil {
		t.Fatal(err)
	}
	if w, err = d.Transition(ctx, pmGarden, w.ID, TransitionRequest{To: StateAssigned, Assignee: "tech-garden-1"}); err != nil {
		t.Fatal(err)
	}
	p1, err := photos.Save(ctx, bytes.NewReader(smallJPEG(t, 10)))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := photos.Save(ctx, bytes.NewReader(smallJPEG(t, 200)))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{strings.Repeat("ab", 32)}, {"../x"}, make([]string, MaxPhotos+1)} {
		if _, err := d.Transition(ctx, techGarden1, w.ID, TransitionRequest{To: StateAccepted, Photos: bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("photos %q: %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := d.Transition(ctx, techGarden1, w.ID, TransitionRequest{To: StateAccepted, Note: "到场 on site", Photos: []string{p1.ID, p2.ID}, Photo: "oss://x/1.jpg"}); err != nil {
		t.Fatal(err)
	}
	d.Stop()
	d = start()
	back, err := d.Get(context.Background(), hqAdmin, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	last := back.History[len(back.History)-1]
	if len(last.Photos) != 2 || last.Photos[0] != p1 || last.Photos[1] != p2 || last.Photo != "oss://x/1.jpg" || last.Note != "到场 on site" {
		t.Fatalf("stored step: photos %+v ref %q note %q", last.Photos, last.Photo, last.Note)
	}
	if !back.HasPhoto(p1.ID) || !back.HasPhoto(p2.ID) || back.HasPhoto(strings.Repeat("0", 64)) {
		t.Error("HasPhoto disagrees with the history")
	}
	// A desk that keeps no photos refuses steps that name some.
	bare, err := New(Config{Org: &b.Org, Rules: &b.Rules, Log: &memLog{}, Feed: alarm.NewFeed(0, now), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bare.photosOf(ctx, "x", []string{p1.ID}); !errors.Is(err, ErrInvalid) {
		t.Errorf("desk without photos: %v", err)
	}
}
