package alarm

import (
	"context"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/fakes"
)

func TestFeedSequenceRingAndBackfill(t *testing.T) {
	clock := fakes.NewClock(t0)
	f := NewFeed(3, clock.Now)
	f.Advance(uint64(t0.UnixMicro()) + 100) // stored events from before a restart
	var seqs []uint64
	for i := 0; i < 5; i++ {
		seqs = append(seqs, f.Publish(func(seq uint64) Item { return Item{Type: ItemAlarm, Project: "garden", Data: i} }))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("sequence not increasing: %v", seqs)
		}
	}
	if seqs[0] != uint64(t0.UnixMicro())+101 {
		t.Errorf("first seq %d, want the stored maximum + 1", seqs[0])
	}
	clock.Set(t0.Add(time.Hour)) // the clock moves on: sequence follows it
	if s := f.Publish(func(uint64) Item { return Item{} }); s != uint64(t0.Add(time.Hour).UnixMicro()) {
		t.Errorf("seq %d does not follow the clock", s)
	}
	ctx := context.Background()
	// The ring holds the last 3; resuming from the 4th published one is served from it.
	items, err := f.Read(ctx, seqs[3], 10)
	if err != nil || len(items) != 2 || items[0].Seq != seqs[4] {
		t.Fatalf("read from ring: %v %+v", err, items)
	}
	// Older: the ring cannot serve it, the backfill does.
	var asked uint64
	f.AddBackfill(func(_ context.Context, after uint64, limit int) ([]Item, error) {
		asked = after
		return []Item{{Seq: seqs[1]}, {Seq: seqs[2]}}, nil
	})
	items, err = f.Read(ctx, seqs[0], 10)
	if err != nil || asked != seqs[0] || len(items) != 2 || items[0].Seq != seqs[1] {
		t.Fatalf("backfill: %v asked %d, %+v", err, asked, items)
	}
	// Subscribers are woken.
	ch, cancel := f.Subscribe()
	defer cancel()
	f.Publish(func(uint64) Item { return Item{} })
	select {
	case <-ch:
	default:
		t.Fatal("subscriber not signalled")
	}
}

func TestViewerScope(t *testing.T) {
	alarmG := Item{Type: ItemAlarm, Company: "acme", Project: "garden"}
	woG := Item{Type: ItemWorkOrder, Company: "acme", Project: "garden", Assignees: []string{"tech-garden-1"}}
	woMoved := Item{Type: ItemWorkOrder, Company: "acme", Project: "garden", Assignees: []string{"tech-garden-2", "tech-garden-1"}}
	woNone := Item{Type: ItemWorkOrder, Company: "acme", Project: "garden"}
	woT := Item{Type: ItemWorkOrder, Company: "acme", Project: "tower", Assignees: []string{"tech-tower-1"}}
	tech2 := Viewer{Staff: "tech-garden-2", Role: config.RoleTechnician, Company: "acme", Projects: []string{"garden"}}
	cases := []struct {
		v    Viewer
		it   Item
		want bool
	}{
		{hqAdmin, alarmG, true}, {hqAdmin, woT, true}, {hqViewer, woG, true}, {otherCo, alarmG, false},
		{pmGarden, alarmG, true}, {pmGarden, woG, true}, {pmGarden, woT, false}, {pmTower, alarmG, false},
		{techGarden, alarmG, true}, {techGarden, woG, true}, {tech2, woG, false}, {techGarden, woT, false},
		{techTower, alarmG, false}, {Viewer{Company: "acme", Role: "janitor"}, alarmG, false},
		{techGarden, woMoved, true}, {tech2, woMoved, true}, {techGarden, woNone, false}, {pmGarden, woNone, true},
	}
	for _, c := range cases {
		if got := c.it.VisibleTo(c.v); got != c.want {
			t.Errorf("%s (%s) sees %s of %s: %v, want %v", c.v.Staff, c.v.Role, c.it.Type, c.it.Project, got, c.want)
		}
	}
}
