package queue

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

func flush(t *testing.T, q *Queue) {
	t.Helper()
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestBatchStates walks one batch through every state: formed and in
// flight, PUBACKed and awaiting commit (payload released), re-sent after a
// commit timeout byte for byte, committed and deleted.
func TestBatchStates(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Config{})
	for i := 0; i < 3; i++ {
		if err := q.Append(ctx, readings("meter-1", i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := q.Next(ctx, Live, 10, 3)
	if err != nil || len(bs) != 3 {
		t.Fatalf("next: %v, %v", bs, err)
	}
	first := append([]byte(nil), bs[0].Payload...)
	if st := q.Stats(); st.InFlightBatches != 3 || st.InFlightReadings != 30 || st.AwaitingBatches != 0 {
		t.Fatalf("formed: %+v", st)
	}

	// PUBACK of the first two: they wait for their commit and stay stored.
	q.Sent(bs[0].Seq)
	q.Sent(bs[1].Seq)
	q.Sent(bs[1].Seq) // twice is harmless
	q.Sent(999)       // unknown too
	flush(t, q)
	st := q.Stats()
	if st.InFlightBatches != 1 || st.InFlightReadings != 10 || st.AwaitingBatches != 2 || st.AwaitingReadings != 20 || st.Readings != 30 {
		t.Fatalf("after PUBACK: %+v", st)
	}
	out := q.Outstanding()
	if len(out) != 3 || !out[0].Sent || !out[1].Sent || out[2].Sent {
		t.Fatalf("outstanding: %+v", out)
	}

	// No commit came: re-send the first. Same bytes, back in flight.
	again, err := q.Resend(bs[0].Seq)
	if err != nil || again == nil {
		t.Fatalf("resend: %v, %v", again, err)
	}
	if string(again.Payload) != string(first) {
		t.Fatal("re-sent batch differs from the first send")
	}
	flush(t, q)
	if st := q.Stats(); st.InFlightBatches != 2 || st.AwaitingBatches != 1 {
		t.Fatalf("after resend: %+v", st)
	}

	// A ranged commit covering 1 and 2 (and seqs this queue never formed)
	// deletes both, whatever their state; batch 3 stays.
	q.Commit([][2]uint64{{0, bs[1].Seq}, {500, 600}})
	flush(t, q)
	st = q.Stats()
	if st.Readings != 10 || st.InFlightBatches != 1 || st.AwaitingBatches != 0 || st.InFlightReadings != 10 || st.AwaitingReadings != 0 {
		t.Fatalf("after commit: %+v", st)
	}
	if b, err := q.Resend(bs[0].Seq); err != nil || b != nil {
		t.Fatalf("a committed batch can be re-sent: %v, %v", b, err)
	}
	q.Commit([][2]uint64{{bs[0].Seq, bs[1].Seq}}) // a repeated acknowledgement changes nothing
	q.Sent(bs[2].Seq)
	q.Commit([][2]uint64{{bs[2].Seq, bs[2].Seq}})
	flush(t, q)
	if st := q.Stats(); st.Items != 0 || st.Readings != 0 || st.InFlightBatches != 0 || st.AwaitingBatches != 0 ||
		st.InFlightReadings != 0 || st.AwaitingReadings != 0 {
		t.Fatalf("after the last commit: %+v", st)
	}
	if len(q.Outstanding()) != 0 {
		t.Fatalf("outstanding after commit: %+v", q.Outstanding())
	}
}

// TestRejectDeletesCountsAndReports: a rejected batch is deleted, counted
// by cause and reported as a gateway event; the others stay.
func TestRejectDeletesCountsAndReports(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Config{})
	for i := 0; i < 2; i++ {
		if err := q.Append(ctx, readings("meter-1", i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := q.Next(ctx, Live, 10, 2)
	if err != nil || len(bs) != 2 {
		t.Fatalf("next: %v, %v", bs, err)
	}
	q.Sent(bs[0].Seq)
	q.Reject([]Rejection{{Seq: bs[0].Seq, Cause: "seq_conflict"}, {Seq: 77, Cause: "seq_conflict"}})
	flush(t, q)
	st := q.Stats()
	if st.Readings != 10 || st.AwaitingBatches != 0 || st.InFlightBatches != 1 {
		t.Fatalf("after reject: %+v", st)
	}
	if want := map[string]Rejected{"seq_conflict": {Batches: 1, Readings: 10}}; !reflect.DeepEqual(st.Rejected, want) {
		t.Fatalf("rejected: %+v, want %+v", st.Rejected, want)
	}
	e := onlyEvent(t, q)
	if e.Kind != EventBatchRejected || e.Attrs["seq"] != float64(bs[0].Seq) || e.Attrs["readings"] != 10 || !strings.Contains(e.Message, "seq_conflict") {
		t.Fatalf("event: %+v", e)
	}
	// A cause that is not a valid name is counted as "other".
	q.Reject([]Rejection{{Seq: bs[1].Seq, Cause: "no such\ncause"}})
	flush(t, q)
	if got := q.Stats().Rejected["other"]; got.Batches != 1 {
		t.Fatalf("rejected: %+v", q.Stats().Rejected)
	}
}

// TestDropCoversAwaitingCommit: at the bound, batches awaiting their
// commit are dropped whole with the oldest items (counted, also apart),
// batches in flight are spared, and every reading is accounted for.
func TestDropCoversAwaitingCommit(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Config{MaxBytes: 1 << 20, OverflowEventInterval: time.Hour})
	const perItem = 100
	for i := 0; i < 60; i++ {
		if err := q.Append(ctx, readings("meter-1", i*perItem, perItem)); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := q.Next(ctx, Live, 1000, 6) // readings 0…5999 in six batches
	if err != nil || len(bs) != 6 {
		t.Fatalf("next: %v, %v", bs, err)
	}
	for _, b := range bs[:4] { // 0…3999 awaiting commit, 4000…5999 in flight
		q.Sent(b.Seq)
	}
	flush(t, q)
	total := 60
	for st := q.Stats(); st.DroppedReadings < 5000; st = q.Stats() {
		if err := q.Append(ctx, readings("meter-1", total*perItem, perItem)); err != nil {
			t.Fatal(err)
		}
		if total++; total > 3000 {
			t.Fatalf("the queue never dropped 5000 readings: %+v", st)
		}
	}
	st := q.Stats()
	if st.AwaitingBatches != 0 || st.AwaitingReadings != 0 || st.DroppedSentReadings != 4000 {
		t.Fatalf("awaiting batches not dropped first: %+v", st)
	}
	if st.InFlightBatches != 2 || st.InFlightReadings != 2000 {
		t.Fatalf("in-flight batches not spared: %+v", st)
	}
	if st.DroppedReadings+st.Readings != int64(total*perItem) || st.CommittedReadings != int64(total*perItem) {
		t.Fatalf("dropped %d + kept %d != committed %d (appended %d)", st.DroppedReadings, st.Readings, st.CommittedReadings, total*perItem)
	}
	if len(q.Outstanding()) != 2 {
		t.Fatalf("outstanding: %+v", q.Outstanding())
	}
	for _, b := range bs[:4] {
		if again, err := q.Resend(b.Seq); err != nil || again != nil {
			t.Fatalf("dropped batch %d can be re-sent: %v, %v", b.Seq, again, err)
		}
	}
	// What is left after the spared batches is the newest, in order.
	q.Commit([][2]uint64{{bs[4].Seq, bs[5].Seq}})
	flush(t, q)
	st = q.Stats()
	var got []int
	for {
		more, err := q.Next(ctx, Live, protocol.MaxBatchReadings, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(more) == 0 {
			break
		}
		for _, b := range more {
			got = append(got, values(decode(t, b).Readings)...)
		}
	}
	wantRange(t, got, total*perItem-int(st.Readings), int(st.Readings))
}

// TestRestartResendsAwaiting: after a restart, batches that were awaiting
// their commit are outstanding again, not sent, and rebuild byte for byte
// under their seq; the epoch survives the restart, a new file draws
// another.
func TestRestartResendsAwaiting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.db")
	q := openQueue(t, Config{Path: path})
	epoch := q.Epoch()
	if epoch == 0 || epoch >= 1<<63 {
		t.Fatalf("epoch %d out of range", epoch)
	}
	for i := 0; i < 3; i++ {
		if err := q.Append(ctx, readings("meter-1", i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := q.Next(ctx, Live, 10, 3)
	if err != nil || len(bs) != 3 {
		t.Fatalf("next: %v, %v", bs, err)
	}
	payloads := map[uint64]string{}
	for _, b := range bs {
		payloads[b.Seq] = string(b.Payload)
		q.Sent(b.Seq)
	}
	q.Commit([][2]uint64{{bs[1].Seq, bs[1].Seq}})
	flush(t, q)
	q.Stop()

	q2 := openQueue(t, Config{Path: path})
	if q2.Epoch() != epoch {
		t.Fatalf("epoch %d after restart, was %d", q2.Epoch(), epoch)
	}
	st := q2.Stats()
	if st.InFlightBatches != 2 || st.AwaitingBatches != 0 || st.Readings != 20 {
		t.Fatalf("after restart: %+v", st)
	}
	again, err := resendAll(q2)
	if err != nil || len(again) != 2 || again[0].Seq != bs[0].Seq || again[1].Seq != bs[2].Seq {
		t.Fatalf("re-sent after restart: %v, %v", again, err)
	}
	for _, b := range again {
		if string(b.Payload) != payloads[b.Seq] {
			t.Fatalf("batch %d not rebuilt byte for byte", b.Seq)
		}
	}
	if next, err := q2.Next(ctx, Backlog, 10, 1); err != nil || len(next) != 0 {
		t.Fatalf("outstanding readings formed into a new batch: %v, %v", next, err)
	}

	other := openQueue(t, Config{Path: filepath.Join(dir, "other.db")})
	if other.Epoch() == epoch {
		t.Fatalf("a new queue file drew the same epoch %d", epoch)
	}
}

func TestMergeRanges(t *testing.T) {
	got := mergeRanges([][2]uint64{{10, 12}, {1, 3}, {4, 5}, {9, 9}, {11, 20}, {30, 29}, {40, 40}})
	want := [][2]uint64{{1, 5}, {9, 20}, {40, 40}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merged %v, want %v", got, want)
	}
}

// TestCommitManyRanges: a commit with many ranges deletes exactly the
// batches inside them.
func TestCommitManyRanges(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Config{})
	for i := 0; i < 40; i++ {
		if err := q.Append(ctx, readings("meter-1", i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := q.Next(ctx, Live, 1, 40)
	if err != nil || len(bs) != 40 {
		t.Fatalf("next: %d, %v", len(bs), err)
	}
	var ranges [][2]uint64
	for i := 0; i < 40; i += 2 { // every other batch
		ranges = append(ranges, [2]uint64{bs[i].Seq, bs[i].Seq})
	}
	q.Commit(ranges)
	flush(t, q)
	out := q.Outstanding()
	if len(out) != 20 {
		t.Fatalf("%d outstanding, want 20", len(out))
	}
	for i, o := range out {
		if o.Seq != bs[2*i+1].Seq {
			t.Fatalf("outstanding %d is seq %d, want %d", i, o.Seq, bs[2*i+1].Seq)
		}
	}
}
