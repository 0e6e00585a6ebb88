package workorder

import (
	"context"
	"testing"
	"time"
)

// Issue 19: the order a new incident's order follows is a column of the
// work-order event log (version 2 of its schema), read back at a restart
// and listed with the order.
func TestFollowsIsStoredInItsColumn(t *testing.T) {
	conn := migrate(t)
	r := newRig(t, nil, NewClickHouseLog(conn))
	first := monday10.Add(time.Hour)
	a1 := r.raise("garden-elevator-1", "elevator-trapped", first)
	a2 := r.raiseAfter(a1, first.Add(10*time.Minute), first.Add(20*time.Minute))
	w1, w2 := r.orderFor(a1), r.orderFor(a2)
	if w1 == nil || w2 == nil || w2.Follows != w1.ID {
		t.Fatalf("orders %+v, %+v: want the second to follow the first", w1, w2)
	}
	var rows []struct {
		Follows string `ch:"follows"`
	}
	if err := conn.Select(context.Background(), &rows, "SELECT follows FROM "+tableEvents+" WHERE wo_id = ? ORDER BY n", w2.ID); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("no stored events of %s", w2.ID)
	}
	for i, row := range rows {
		if row.Follows != w1.ID {
			t.Errorf("event %d of %s: follows %q, want %q", i+1, w2.ID, row.Follows, w1.ID)
		}
	}
	r.d.Stop()
	r.start()
	if w := r.orderFor(a2); w == nil || w.Follows != w1.ID {
		t.Errorf("after a restart: %+v, want it to follow %s", w, w1.ID)
	}
	if w := r.orderFor(a1); w == nil || w.Follows != "" {
		t.Errorf("first order after a restart: %+v, want it to follow none", w)
	}
}

// Orders stored before the column existed carry the link only in their
// opening note: a restart still finds it there.
func TestFollowsOfOrdersStoredBeforeTheColumn(t *testing.T) {
	r := newRig(t, nil, nil)
	first := monday10.Add(time.Hour)
	a1 := r.raise("garden-elevator-1", "elevator-trapped", first)
	a2 := r.raiseAfter(a1, first.Add(10*time.Minute), first.Add(20*time.Minute))
	w1 := r.orderFor(a1)
	old := &memLog{}
	evs := r.log.(*memLog).Events()
	for i := range evs {
		evs[i].Order.Follows = "" // as read from a row of version 1
	}
	if err := old.Append(evs); err != nil {
		t.Fatal(err)
	}
	r2 := newRig(t, nil, old)
	if w := r2.orderFor(a2); w == nil || w.Follows != w1.ID {
		t.Errorf("restored from version-1 rows: %+v, want it to follow %s (from its opening note)", w, w1.ID)
	}
}
