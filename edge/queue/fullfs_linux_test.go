package queue

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/plantroom/plantroom/internal/testenv"
	"github.com/plantroom/plantroom/protocol"
)

const envFullFS = "PLANTROOM_QUEUE_FULLFS"

// optOutFullFS skips TestFullFilesystem on a machine that cannot give root a
// private tmpfs (a container without CAP_SYS_ADMIN); without it the test
// fails there.
const optOutFullFS = "PLANTROOM_SKIP_FULLFS"

// TestFullFilesystem fills a real filesystem to the last byte beside the
// queue: a 16 MiB tmpfs, mounted in a private mount namespace (unshare), so
// nothing outside the test sees it. The queue must keep taking readings
// without a failed commit, drop its oldest ones to make room, and hand the
// newest ones to the uplink. The test binary runs itself again inside the
// namespace; mounting needs root, as CI runs.
func TestFullFilesystem(t *testing.T) {
	if dir := os.Getenv(envFullFS); dir != "" {
		fullFilesystem(t, dir)
		return
	}
	testenv.NeedRoot(t, optOutFullFS, "mounting a test tmpfs")
	unshare := testenv.LookPath(t, optOutFullFS, "unshare", "util-linux")
	dir := t.TempDir()
	script := `dir=$1; shift
mount -t tmpfs -o size=16m plantroom-queue-test "$dir" || { echo "mount refused"; exit 97; }
exec "$@" -test.run '^TestFullFilesystem$' -test.v -test.count 1`
	args := append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh", dir}, testenv.SelfArgv()...)
	cmd := exec.Command(unshare, args...)
	cmd.Env = append(os.Environ(), envFullFS+"="+dir)
	out, err := cmd.CombinedOutput()
	// A container without CAP_SYS_ADMIN refuses the namespace, its mount
	// propagation or the mount: that is the machine, not the queue. Any
	// failure before the test binary ran inside (it prints "=== RUN") is
	// of that kind.
	if err != nil && !bytes.Contains(out, []byte("=== RUN")) {
		testenv.Missing(t, optOutFullFS, "a private tmpfs mount for root (unshare --mount; CAP_SYS_ADMIN):\n%s", out)
	}
	if err != nil {
		t.Fatalf("the queue on a full filesystem: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func fullFilesystem(t *testing.T, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := openQueue(t, Config{Path: filepath.Join(dir, "q", "queue.db"), MaxBytes: 256 << 20, MinFreeBytes: 2 << 20,
		CommitInterval: 5 * time.Millisecond})
	const perItem = 100
	added := 0
	add := func(n int) {
		t.Helper()
		addCommitted(t, q, added*perItem, n, perItem)
		added += n
	}
	add(2000) // about 5 MB of items, the uplink down

	// Someone else takes every byte left.
	f, err := os.Create(filepath.Join(dir, "junk"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	if free, err := FreeSpace(dir); err != nil || free != 0 {
		t.Fatalf("the tmpfs has %d bytes free after the junk file (%v)", free, err)
	}

	for round := 0; round < 3; round++ {
		add(1000)
	}
	st := q.Stats()
	t.Logf("after filling the disk: %+v", st)
	if st.CommitErrors != 0 || st.RefusedReadings != 0 || st.DroppedReadings == 0 || st.DiskFreeBytes != 0 {
		t.Fatalf("commit errors %d, refused %d, dropped %d, disk free %d", st.CommitErrors, st.RefusedReadings, st.DroppedReadings, st.DiskFreeBytes)
	}
	if st.DroppedReadings+st.Readings != int64(added*perItem) {
		t.Fatalf("dropped %d + kept %d readings, want %d", st.DroppedReadings, st.Readings, added*perItem)
	}
	// The uplink comes back: the newest readings go out, in order, the last
	// one included. The disk is still full, so the queue goes on keeping
	// min_free of free pages inside its file and may drop a few more of
	// its oldest items meanwhile; those are counted.
	var got []int
	for {
		bs, err := q.Next(ctx, Live, protocol.MaxBatchReadings, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) == 0 {
			break
		}
		for _, b := range bs {
			got = append(got, values(decode(t, b).Readings)...)
			q.Ack(b.Seq)
		}
	}
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	end := q.Stats()
	if end.Items != 0 || end.CommitErrors != 0 {
		t.Fatalf("after draining: %+v", end)
	}
	if len(got) == 0 {
		t.Fatal("nothing sent after the uplink came back")
	}
	if int64(len(got))+end.DroppedReadings != int64(added*perItem) || got[len(got)-1] != added*perItem-1 {
		t.Fatalf("sent %d readings (the last %d) and dropped %d, want %d in all ending with %d", len(got), got[len(got)-1], end.DroppedReadings, added*perItem, added*perItem-1)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("reading %d sent after %d", got[i], got[i-1])
		}
	}
	drained := end.DroppedReadings - st.DroppedReadings
	t.Logf("sent %d readings; %d more dropped while draining", len(got), drained)
	if drained > st.Readings/10 {
		t.Errorf("%d more readings dropped while draining %d", drained, st.Readings)
	}
}
