package queue

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plantroom/plantroom/internal/logtest"
	"github.com/plantroom/plantroom/protocol"
)

const testGateway = "gw-test-1"

// baseTS is a fixed reading time; tests number readings by TS offset.
var baseTS = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// readings returns n readings of one device with TS baseTS+from … and Value
// equal to the index, so a test can tell exactly which ones arrived.
func readings(device string, from, n int) []protocol.Reading {
	rs := make([]protocol.Reading, n)
	for i := range rs {
		rs[i] = protocol.Reading{Device: device, Metric: "power_w", TS: baseTS + int64(from+i), Value: float64(from + i)}
	}
	return rs
}

func openQueue(t *testing.T, cfg Config) *Queue {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "queue.db")
	}
	if cfg.Gateway == "" {
		cfg.Gateway = testGateway
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = time.Millisecond
	}
	// What the queue logs (a failed commit says why) is shown with a
	// failure.
	var logged logtest.Buffer
	t.Cleanup(func() {
		if t.Failed() && logged.String() != "" {
			t.Logf("the queue logged:\n%s", logged.String())
		}
	})
	q, err := New(cfg, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Stop)
	return q
}

func decode(t *testing.T, b *Batch) protocol.Batch {
	t.Helper()
	var pb protocol.Batch
	if err := protocol.DecodeBatch(b.Payload, &pb); err != nil {
		t.Fatalf("batch %d does not decode: %v", b.Seq, err)
	}
	if pb.Seq != b.Seq || pb.Gateway != testGateway || len(pb.Readings) != b.Readings {
		t.Fatalf("batch %d decodes as gateway %q seq %d with %d readings, want %q %d %d",
			b.Seq, pb.Gateway, pb.Seq, len(pb.Readings), testGateway, b.Seq, b.Readings)
	}
	return pb
}

// values returns the Value of each reading, in order.
func values(rs []protocol.Reading) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = int(r.Value)
	}
	return out
}

func wantRange(t *testing.T, got []int, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d readings (%v…), want %d from %d", len(got), got[:min(len(got), 5)], n, from)
	}
	for i, v := range got {
		if v != from+i {
			t.Fatalf("reading %d is %d, want %d", i, v, from+i)
		}
	}
}

func TestAppendNextAck(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Config{})
	for i := 0; i < 10; i++ {
		if err := q.Append(ctx, readings("pump-1", i*30, 30)); err != nil {
			t.Fatal(err)
		}
	}
	if st := q.Stats(); st.Items != 10 || st.Readings != 300 || st.LiveReadings != 300 || st.CommittedReadings != 300 {
		t.Fatalf("stats after append: %+v", st)
	}
	bs, err := q.Next(ctx, Live, 100, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Whole items of 30 readings: 90 fit under 100, so 4 batches (90, 90, 90, 30).
	if len(bs) != 4 {
		t.Fatalf("got %d batches, want 4", len(bs))
	}
	var all []int
	for i, b := range bs {
		if b.Seq != uint64(i+1) {
			t.Errorf("batch %d has seq %d, want %d", i, b.Seq, i+1)
		}
		all = append(all, values(decode(t, b).Readings)...)
	}
	wantRange(t, all, 0, 300)
	if more, err := q.Next(ctx, Live, 100, 10); err != nil || len(more) != 0 {
		t.Fatalf("in-flight items were handed out again: %d batches, err %v", len(more), err)
	}
	for _, b := range bs[:3] {
		q.Ack(b.Seq)
	}
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Items != 1 || st.Readings != 30 || st.InFlightBatches != 1 || st.LiveReadings != 0 {
		t.Fatalf("stats after 3 acks: %+v", st)
	}
	q.Ack(bs[3].Seq)
	q.Ack(bs[3].Seq) // twice is harmless
	q.Ack(999)       // unknown is harmless
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Items != 0 || st.Bytes != 0 || st.InFlightBatches != 0 || !st.Oldest.IsZero() {
		t.Fatalf("stats after all acks: %+v", st)
	}
}

func TestRestartResumesSeqAndInFlight(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openQueue(t, Config{Path: path})
	for i := 0; i < 4; i++ {
		if err := q.Append(ctx, readings("meter-1", i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := q.Next(ctx, Live, 20, 1)
	if err != nil || len(bs) != 1 || bs[0].Seq != 1 {
		t.Fatalf("first batch: %v, %v", bs, err)
	}
	sent := append([]byte(nil), bs[0].Payload...)
	q.Stop()

	q2 := openQueue(t, Config{Path: path})
	st := q2.Stats()
	if st.Items != 4 || st.InFlightBatches != 1 || st.BacklogReadings != 20 || st.LiveReadings != 0 {
		t.Fatalf("stats after restart: %+v", st)
	}
	again, err := resendAll(q2)
	if err != nil || len(again) != 1 {
		t.Fatalf("in flight after restart: %v, %v", again, err)
	}
	if again[0].Seq != 1 || string(again[0].Payload) != string(sent) {
		t.Fatalf("batch 1 was not rebuilt byte for byte (seq %d)", again[0].Seq)
	}
	// Everything stored before the restart is backlog; the live lane is empty.
	if live, _ := q2.Next(ctx, Live, 100, 5); len(live) != 0 {
		t.Fatalf("live lane after restart has %d batches", len(live))
	}
	rest, err := q2.Next(ctx, Backlog, 100, 5)
	if err != nil || len(rest) != 1 || rest[0].Seq != 2 {
		t.Fatalf("backlog batch after restart: %v, %v (want seq 2)", rest, err)
	}
	wantRange(t, values(decode(t, rest[0]).Readings), 20, 20)
}

func TestLiveFirstLanes(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Config{})
	if err := q.Append(ctx, readings("pump-1", 0, 50)); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(ctx, readings("pump-1", 50, 50)); err != nil {
		t.Fatal(err)
	}
	q.MarkLive() // the uplink connects: what is stored becomes backlog
	if err := q.Append(ctx, readings("pump-1", 100, 50)); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.BacklogReadings != 100 || st.LiveReadings != 50 {
		t.Fatalf("lanes: %+v", st)
	}
	live, err := q.Next(ctx, Live, 1000, 4)
	if err != nil || len(live) != 1 || live[0].Lane != Live {
		t.Fatalf("live: %v, %v", live, err)
	}
	wantRange(t, values(decode(t, live[0]).Readings), 100, 50)
	back, err := q.Next(ctx, Backlog, 50, 4)
	if err != nil || len(back) != 2 {
		t.Fatalf("backlog: %v, %v", back, err)
	}
	wantRange(t, append(values(decode(t, back[0]).Readings), values(decode(t, back[1]).Readings)...), 0, 100)
	if back[0].Seq != 2 || back[1].Seq != 3 {
		t.Fatalf("backlog seqs %d, %d; want 2, 3", back[0].Seq, back[1].Seq)
	}
}

func TestDropOldestAtBound(t *testing.T) {
	ctx := context.Background()
	const maxBytes = 1 << 20
	q := openQueue(t, Config{MaxBytes: maxBytes, OverflowEventInterval: time.Hour})
	const perItem, items = 100, 2000 // about 1.8 MB of items
	for i := 0; i < items; i++ {
		c, err := q.Add(readings("meter-1", i*perItem, perItem))
		if err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			if err := c.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := q.Stats()
	if st.Bytes > maxBytes {
		t.Fatalf("queue holds %d bytes, bound is %d", st.Bytes, maxBytes)
	}
	if st.DroppedReadings == 0 || st.DroppedReadings+st.Readings != items*perItem {
		t.Fatalf("dropped %d + kept %d readings, want %d in total", st.DroppedReadings, st.Readings, items*perItem)
	}
	if st.FileBytes > 2*maxBytes+1<<20 {
		t.Errorf("file is %d bytes for a bound of %d", st.FileBytes, maxBytes)
	}
	// The newest readings survive, the oldest are gone.
	newestSurvive(t, q, st)
	// One overflow event carries the count.
	e := onlyEvent(t, q)
	if e.Kind != protocol.EventQueueOverflow || e.Attrs["dropped"] <= 0 || e.Attrs["dropped"] > float64(st.DroppedReadings) || e.Gateway != testGateway {
		t.Fatalf("overflow event %+v (dropped in total %d)", e, st.DroppedReadings)
	}
}

// Items of a batch in flight (sent, PUBACK pending) are never dropped at the
// bound: they may have reached the cloud, so dropping them would count as
// lost what was not, and they must stay for the re-send. The drop counter
// then equals exactly what the queue deleted.
func TestDropSparesInFlight(t *testing.T) {
	ctx := context.Background()
	const maxBytes = 1 << 20
	q := openQueue(t, Config{MaxBytes: maxBytes, OverflowEventInterval: time.Hour})
	const perItem = 100
	for i := 0; i < 50; i++ {
		if err := q.Append(ctx, readings("meter-1", i*perItem, perItem)); err != nil {
			t.Fatal(err)
		}
	}
	inflight, err := q.Next(ctx, Live, 1000, 2) // the 2 000 oldest readings, in flight
	if err != nil || len(inflight) != 2 {
		t.Fatalf("in flight: %v, %v", inflight, err)
	}
	for i := 50; i < 2000; i++ { // about 1.8 MB more: far past the bound
		if err := q.Append(ctx, readings("meter-1", i*perItem, perItem)); err != nil {
			t.Fatal(err)
		}
	}
	st := q.Stats()
	if st.DroppedReadings == 0 || st.InFlightReadings != 2000 || st.InFlightBatches != 2 {
		t.Fatalf("after the bound: %+v", st)
	}
	if st.DroppedReadings+st.Readings != 2000*perItem {
		t.Fatalf("dropped %d + kept %d readings, want %d in total", st.DroppedReadings, st.Readings, 2000*perItem)
	}
	// The in-flight readings 0…1999 are all still there; what was dropped is
	// the oldest of the rest, 2000 onwards.
	q.Ack(inflight[0].Seq)
	q.Ack(inflight[1].Seq)
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st2 := q.Stats(); st2.Readings != st.Readings-2000 || st2.InFlightReadings != 0 {
		t.Fatalf("acking the in-flight batches removed %d readings, want 2000: %+v", st.Readings-st2.Readings, st2)
	}
	bs, err := q.Next(ctx, Live, protocol.MaxBatchReadings, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, b := range bs {
		got = append(got, values(decode(t, b).Readings)...)
	}
	wantRange(t, got, 2000+int(st.DroppedReadings), 2000*perItem-2000-int(st.DroppedReadings))
}

func TestEventsPersistWithSeq(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openQueue(t, Config{Path: path})
	for _, kind := range []string{protocol.EventGatewayStart, protocol.EventDeviceOffline} {
		if err := q.AddEvent(protocol.Event{Kind: kind, Device: "pump-1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.AddEvent(protocol.Event{Kind: "Bad Kind"}); err == nil {
		t.Fatal("an invalid event kind was accepted")
	}
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs := q.Events()
	if len(evs) != 2 || evs[0].Seq != 1 || evs[1].Seq != 2 {
		t.Fatalf("events %+v", evs)
	}
	q.AckEvent(1)
	q.Stop()
	q2 := openQueue(t, Config{Path: path})
	evs = q2.Events()
	if len(evs) != 1 || evs[0].Seq != 2 {
		t.Fatalf("events after restart %+v", evs)
	}
	if err := q2.AddEvent(protocol.Event{Kind: protocol.EventDeviceOnline, Device: "pump-1"}); err != nil {
		t.Fatal(err)
	}
	if err := q2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs = q2.Events()
	if len(evs) != 2 || evs[1].Seq != 3 {
		t.Fatalf("event seq did not survive the restart: %+v", evs)
	}
	e, err := protocol.DecodeEvent(evs[1].Payload)
	if err != nil || e.Seq != 3 || e.Gateway != testGateway || e.Kind != protocol.EventDeviceOnline {
		t.Fatalf("event %+v, %v", e, err)
	}
}

func TestAddRejectsBadReadings(t *testing.T) {
	q := openQueue(t, Config{})
	if _, err := q.Add(nil); err == nil {
		t.Error("empty add accepted")
	}
	rs := readings("pump-1", 0, 3)
	rs[1].Value = math.NaN()
	if _, err := q.Add(rs); !errors.Is(err, protocol.ErrValue) {
		t.Errorf("NaN reading: got %v, want ErrValue", err)
	}
	rs = readings("pump 1", 0, 1)
	if _, err := q.Add(rs); !errors.Is(err, protocol.ErrID) {
		t.Errorf("bad device id: got %v, want ErrID", err)
	}
}

func TestAddRefusesWhenWriterIsBehind(t *testing.T) {
	q := openQueue(t, Config{PendingMaxBytes: 4096, CommitInterval: time.Hour, CommitMaxItems: 1 << 30})
	var refused error
	for i := 0; i < 100 && refused == nil; i++ {
		_, refused = q.Add(readings("pump-1", i*20, 20))
	}
	if !errors.Is(refused, ErrOverloaded) {
		t.Fatalf("Add never refused: %v", refused)
	}
	if q.Stats().RefusedReadings != 20 {
		t.Fatalf("refused readings counted %d, want 20", q.Stats().RefusedReadings)
	}
}

func TestCorruptItemIsDeletedNotSent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openQueue(t, Config{Path: path})
	for i := 0; i < 3; i++ {
		if err := q.Append(ctx, readings("pump-1", i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	q.Stop()
	// Flip a byte of item 2's payload behind the queue's back.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems)
		v := append([]byte(nil), b.Get(u64(2))...)
		v[len(v)-10] ^= 0xff
		return b.Put(u64(2), v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	q2 := openQueue(t, Config{Path: path})
	bs, err := q2.Next(ctx, Backlog, 1000, 5)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, b := range bs {
		got = append(got, values(decode(t, b).Readings)...)
	}
	if len(got) != 20 || got[0] != 0 || got[10] != 20 {
		t.Fatalf("got readings %v, want 0–9 and 20–29", got)
	}
	if st := q2.Stats(); st.CorruptItems != 1 || st.Readings != 20 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	openQueue(t, Config{Path: path})
	q, err := New(Config{Path: path, Gateway: testGateway}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(context.Background()); err == nil {
		q.Stop()
		t.Fatal("a second queue opened the same file")
	}
	q.Stop() // Stop after a failed Start is harmless
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Gateway: testGateway},
		{Path: "x.db", Gateway: "bad id"},
		{Path: "x.db", Gateway: testGateway, MaxBytes: 1000},
	} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	_ = os.Remove("x.db")
}

// newestSurvive checks that the live lane holds exactly the readings after
// the st.DroppedReadings oldest ones (values are their index), and returns
// the batches it formed.
func newestSurvive(t *testing.T, q *Queue, st Stats) []*Batch {
	t.Helper()
	bs, err := q.Next(context.Background(), Live, protocol.MaxBatchReadings, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, b := range bs {
		got = append(got, values(decode(t, b).Readings)...)
	}
	wantRange(t, got, int(st.DroppedReadings), int(st.Readings))
	return bs
}

// onlyEvent returns the queue's one stored event, decoded.
func onlyEvent(t *testing.T, q *Queue) protocol.Event {
	t.Helper()
	evs := q.Events()
	if len(evs) != 1 {
		t.Fatalf("%d events, want one", len(evs))
	}
	e, err := protocol.DecodeEvent(evs[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// resendAll returns every formed, uncommitted batch with its payload, as
// the uplink re-sends them after a restart.
func resendAll(q *Queue) ([]*Batch, error) {
	var out []*Batch
	for _, o := range q.Outstanding() {
		b, err := q.Resend(o.Seq)
		if err != nil {
			return out, err
		}
		if b != nil {
			out = append(out, b)
		}
	}
	return out, nil
}
