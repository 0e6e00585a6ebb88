package queue

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// A random mix of appends, reconnects (MarkLive), batch formation from both
// lanes and acknowledgements keeps the lane counters equal to what is
// stored: live + backlog + in flight = readings, none negative.
func TestLaneCountersStayConsistent(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Config{MaxBytes: 1 << 20})
	rng := rand.New(rand.NewPCG(1, 2))
	var inflight []*Batch
	next := 0
	for step := 0; step < 3000; step++ {
		switch r := rng.IntN(10); {
		case r < 5:
			n := 1 + rng.IntN(200)
			if _, err := q.Add(readings("pump-1", next, n)); err != nil {
				t.Fatal(err)
			}
			next += n
		case r < 6:
			q.MarkLive()
		case r < 8:
			lane := Live
			if rng.IntN(2) == 0 {
				lane = Backlog
			}
			bs, err := q.Next(ctx, lane, 1+rng.IntN(100), 1+rng.IntN(3))
			if err != nil {
				t.Fatal(err)
			}
			inflight = append(inflight, bs...)
		default:
			if len(inflight) > 0 {
				i := rng.IntN(len(inflight))
				q.Ack(inflight[i].Seq)
				inflight = append(inflight[:i], inflight[i+1:]...)
			}
		}
		if step%10 == 0 {
			if err := q.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			st := q.Stats()
			if st.LiveReadings < 0 || st.BacklogReadings < 0 || st.LiveReadings+st.BacklogReadings+st.InFlightReadings != st.Readings {
				t.Fatalf("step %d: live %d + backlog %d + in flight %d != stored %d (dropped %d)",
					step, st.LiveReadings, st.BacklogReadings, st.InFlightReadings, st.Readings, st.DroppedReadings)
			}
		}
	}
}

// Acknowledgements arrive in any order (PUBACKs race each other); acking
// neighbouring batches backwards in one commit, over many pages, must
// delete every item of every batch.
func TestAcksInReverseOrderDeleteEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openQueue(t, Config{Path: path})
	src := newBenchSource()
	for i := 0; i < 2000; i++ {
		if _, err := q.Add(src.item(i, nil)); err != nil {
			t.Fatal(err)
		}
	}
	var seqs []uint64
	for {
		bs, err := q.Next(ctx, Live, 2000, 8)
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) == 0 {
			break
		}
		for _, b := range bs {
			seqs = append(seqs, b.Seq)
		}
	}
	if len(seqs) < 10 {
		t.Fatalf("only %d batches", len(seqs))
	}
	q.Stop()
	// Reopened with a long commit interval, so that every ack lands in the
	// one commit Flush forces.
	q = openQueue(t, Config{Path: path, CommitInterval: time.Hour})
	// Whatever the reopened queue commits on its own at start is done
	// before the acks, so they are counted alone.
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before := q.Stats().Commits
	for i := len(seqs) - 1; i >= 0; i-- {
		q.Ack(seqs[i])
	}
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Items != 0 || st.Readings != 0 || st.InFlightBatches != 0 || st.InFlightReadings != 0 || st.Commits != before+1 {
		t.Fatalf("after acking every batch in one commit (%d commits before): %+v", before, st)
	}
}
