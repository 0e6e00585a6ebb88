package queue

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestEpochPerFile checks that a queue file keeps the epoch it was created
// with across restarts, that every batch carries it, and that a wiped file
// (a new disk, a reinstall) starts a new seq space under another epoch.
func TestEpochPerFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	batchEpoch := func(q *Queue) (uint64, uint64) {
		t.Helper()
		if err := q.Append(ctx, readings("meter-1", 0, 5)); err != nil {
			t.Fatal(err)
		}
		bs, err := q.Next(ctx, Live, 100, 1)
		if err != nil || len(bs) != 1 {
			t.Fatalf("Next: %v, %v", bs, err)
		}
		pb := decode(t, bs[0])
		return pb.Epoch, pb.Seq
	}

	q := openQueue(t, Config{Path: path})
	first := q.Epoch()
	if first == 0 || first > 1<<63-1 {
		t.Fatalf("epoch of a new file = %d, want 1 … 2^63-1", first)
	}
	if e, seq := batchEpoch(q); e != first || seq != 1 {
		t.Fatalf("first batch has epoch %d seq %d, want %d and 1", e, seq, first)
	}
	q.Stop()

	q = openQueue(t, Config{Path: path})
	if q.Epoch() != first {
		t.Fatalf("epoch after a restart = %d, want %d", q.Epoch(), first)
	}
	if e, seq := batchEpoch(q); e != first || seq != 2 {
		t.Fatalf("batch after a restart has epoch %d seq %d, want %d and 2", e, seq, first)
	}
	q.Stop()

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, Config{Path: path})
	if q.Epoch() == first || q.Epoch() == 0 {
		t.Fatalf("a wiped queue kept epoch %d (was %d)", q.Epoch(), first)
	}
	if e, seq := batchEpoch(q); e != q.Epoch() || seq != 1 {
		t.Fatalf("first batch of a wiped queue has epoch %d seq %d, want %d and 1", e, seq, q.Epoch())
	}
}
