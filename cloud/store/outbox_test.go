package store

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/internal/logtest"
)

func TestOutboxKeepsOrderAndBacksOff(t *testing.T) {
	var stored []int
	var fail error
	tries := 0
	o := NewOutbox("test events", func(_ context.Context, evs []int) error {
		tries++
		if fail != nil {
			return fail
		}
		stored = append(stored, evs...)
		return nil
	}, time.Second, nil)
	ctx := context.Background()
	if !o.Add(ctx, []int{1, 2}) || !slices.Equal(stored, []int{1, 2}) {
		t.Fatalf("stored %v", stored)
	}
	fail = errors.New("down")
	if o.Add(ctx, []int{3}) || o.Add(ctx, []int{4}) || o.Len() != 2 {
		t.Fatalf("failing store: %d waiting, want 2", o.Len())
	}
	t0 := time.Unix(1000, 0)
	tries = 0
	o.Retry(ctx, t0)                           // tries, fails: next after 1s
	o.Retry(ctx, t0.Add(500*time.Millisecond)) // too early
	o.Retry(ctx, t0.Add(time.Second))          // tries, fails: next after 2s more
	o.Retry(ctx, t0.Add(2*time.Second))        // too early
	if tries != 2 {
		t.Errorf("%d tries during backoff, want 2", tries)
	}
	fail = nil
	o.Retry(ctx, t0.Add(3*time.Second))
	if o.Len() != 0 || !slices.Equal(stored, []int{1, 2, 3, 4}) {
		t.Errorf("after recovery: %d waiting, stored %v", o.Len(), stored)
	}
	// Newer events never overtake waiting ones.
	fail = errors.New("down")
	o.Add(ctx, []int{5})
	fail = nil
	o.Add(ctx, []int{6})
	if !slices.Equal(stored, []int{1, 2, 3, 4, 5, 6}) {
		t.Errorf("stored %v", stored)
	}
}

func TestOutboxLogsAStreakOnce(t *testing.T) {
	var logs logtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	fail := errors.New("down")
	o := NewOutbox("test events", func(context.Context, []int) error { return fail }, time.Second, log)
	for i := range 5 {
		o.Add(context.Background(), []int{i})
	}
	fail = nil
	o.Flush(context.Background())
	if n := strings.Count(logs.String(), "cannot store test events"); n != 1 {
		t.Errorf("failure logged %d times, want once", n)
	}
	if n := strings.Count(logs.String(), "test events stored again"); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
}
