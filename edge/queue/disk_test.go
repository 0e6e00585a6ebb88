package queue

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

// fakeDisk reports a settable amount of free space for the queue's
// directory; the real filesystem is left alone.
type fakeDisk struct{ free atomic.Int64 }

func (d *fakeDisk) freeSpace(string) (int64, error) { return d.free.Load(), nil }

// addCommitted adds n items of perItem readings starting at reading from and
// waits, a minute at most, for their commit.
func addCommitted(t *testing.T, q *Queue, from, n, perItem int) {
	t.Helper()
	var c *Commit
	for i := 0; i < n; i++ {
		var err error
		if c, err = q.Add(readings("meter-1", from+i*perItem, perItem)); err != nil {
			t.Fatalf("Add refused the item from reading %d: %v", from+i*perItem, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Wait(ctx); err != nil {
		t.Fatalf("commit of the items up to reading %d: %v (%+v)", from+n*perItem, err, q.Stats())
	}
}

// When the disk runs short of MinFreeBytes, the bound drops below MaxBytes:
// the oldest readings go, as they would at MaxBytes, the newest are kept,
// an overflow event says why, and the bound returns when space does.
func TestDiskShortLowersTheBound(t *testing.T) {
	disk := &fakeDisk{}
	disk.free.Store(1 << 40)
	const maxBytes, minFree, perItem = 64 << 20, 8 << 20, 100
	q := openQueue(t, Config{MaxBytes: maxBytes, MinFreeBytes: minFree, DiskFree: disk.freeSpace, OverflowEventInterval: time.Hour})

	addCommitted(t, q, 0, 2000, perItem) // a few MB: well above MinBoundBytes
	st := q.Stats()
	if st.DroppedReadings != 0 || st.BoundBytes != maxBytes || st.DiskFreeBytes != 1<<40 {
		t.Fatalf("with room on disk: %+v", st)
	}
	held := st.Bytes

	// Others fill the disk: 1 MiB short of the reserve, and the queue file
	// has next to no free pages inside.
	short := int64(minFree - 1<<20)
	disk.free.Store(short)
	addCommitted(t, q, 2000*perItem, 100, perItem)
	st = q.Stats()
	if st.DroppedReadings == 0 {
		t.Fatalf("nothing dropped with the disk short of its reserve: %+v", st)
	}
	if st.BoundBytes >= held || st.BoundBytes <= MinBoundBytes || st.Bytes > st.BoundBytes || st.DiskFreeBytes != short {
		t.Fatalf("bound %d, holding %d bytes (held %d before), disk free %d: %+v", st.BoundBytes, st.Bytes, held, st.DiskFreeBytes, st)
	}
	if st.DroppedReadings+st.Readings != 2100*perItem {
		t.Fatalf("dropped %d + kept %d readings, want %d", st.DroppedReadings, st.Readings, 2100*perItem)
	}
	// The newest readings are what is left.
	bs := newestSurvive(t, q, st)
	e := onlyEvent(t, q)
	if e.Kind != protocol.EventQueueOverflow || !strings.Contains(e.Message, "disk nearly full") ||
		e.Attrs["disk_free_bytes"] != float64(short) || e.Attrs["bound_bytes"] >= maxBytes || e.Attrs["dropped"] <= 0 || e.Attrs["dropped"] > float64(st.DroppedReadings) {
		t.Fatalf("overflow event %+v", e)
	}
	for _, b := range bs {
		q.Ack(b.Seq)
	}

	// Space comes back: the bound is MaxBytes again and nothing more goes.
	disk.free.Store(1 << 40)
	dropped := st.DroppedReadings
	addCommitted(t, q, 2100*perItem, 100, perItem)
	if st = q.Stats(); st.DroppedReadings != dropped || st.BoundBytes != maxBytes {
		t.Fatalf("with room again: dropped %d (was %d), bound %d", st.DroppedReadings, dropped, st.BoundBytes)
	}
}

// Space free inside the queue file counts as room: after a backlog was sent
// and acknowledged, new readings reuse the file's free pages, so a disk
// short of its reserve drops nothing while that room lasts.
func TestFreePagesInTheFileCountAsRoom(t *testing.T) {
	ctx := context.Background()
	disk := &fakeDisk{}
	disk.free.Store(1 << 40)
	const minFree, perItem = 8 << 20, 100
	q := openQueue(t, Config{MinFreeBytes: minFree, DiskFree: disk.freeSpace})
	addCommitted(t, q, 0, 4000, perItem) // several MiB of items
	for {
		bs, err := q.Next(ctx, Live, protocol.MaxBatchReadings, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) == 0 {
			break
		}
		for _, b := range bs {
			q.Ack(b.Seq)
		}
	}
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := q.Flush(ctx); err != nil { // the pages freed by the acks are released at the next commit
		t.Fatal(err)
	}
	if st := q.Stats(); st.Items != 0 {
		t.Fatalf("%d items left after acking everything", st.Items)
	}
	disk.free.Store(minFree - 1<<20)
	addCommitted(t, q, 4000*perItem, 100, perItem)
	if st := q.Stats(); st.DroppedReadings != 0 || st.Readings != 100*perItem {
		t.Fatalf("dropped %d readings with the file's own free pages to spare (bound %d): %+v", st.DroppedReadings, st.BoundBytes, st)
	}
}

// Without a test hook the queue asks the filesystem.
func TestDiskFreeFromTheFilesystem(t *testing.T) {
	dir := t.TempDir()
	free, err := FreeSpace(dir)
	if err != nil || free <= 0 {
		t.Fatalf("FreeSpace(%q) = %d, %v", dir, free, err)
	}
	q := openQueue(t, Config{Path: filepath.Join(dir, "queue.db")})
	addCommitted(t, q, 0, 1, 10)
	if st := q.Stats(); st.DiskFreeBytes <= 0 || st.BoundBytes <= 0 {
		t.Fatalf("disk free %d, bound %d after a commit", st.DiskFreeBytes, st.BoundBytes)
	}
	if _, err := FreeSpace(filepath.Join(dir, "no-such-dir")); err == nil {
		t.Error("FreeSpace of a missing directory: no error")
	}
}

// On a disk with nothing free at all the bound stops at MinBoundBytes: the
// readings of the moment stay and can still be sent, only older ones go.
func TestFullDiskKeepsTheNewestMegabyte(t *testing.T) {
	disk := &fakeDisk{}
	q := openQueue(t, Config{MinFreeBytes: 8 << 20, DiskFree: disk.freeSpace, OverflowEventInterval: time.Hour})
	const perItem = 100
	addCommitted(t, q, 0, 3000, perItem) // about 2.6 MB of items
	st := q.Stats()
	if st.BoundBytes != MinBoundBytes || st.Bytes > MinBoundBytes || st.Bytes < MinBoundBytes/2 {
		t.Fatalf("bound %d, holding %d bytes; want the bound at %d and most of it used", st.BoundBytes, st.Bytes, MinBoundBytes)
	}
	if st.DroppedReadings == 0 || st.DroppedReadings+st.Readings != 3000*perItem {
		t.Fatalf("dropped %d + kept %d readings, want %d", st.DroppedReadings, st.Readings, 3000*perItem)
	}
	newestSurvive(t, q, st)
}
