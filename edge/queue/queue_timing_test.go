package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plantroom/plantroom/protocol"
)

// benchSource makes item i: one poll of a 30-point device, from 500
// devices in turn. Items are built on the fly into a caller's buffer so
// that the benchmark's own heap does not dominate garbage collection.
type benchSource struct{ devices, metrics []string }

func newBenchSource() *benchSource {
	s := &benchSource{devices: make([]string, 500), metrics: make([]string, 30)}
	for i := range s.devices {
		s.devices[i] = fmt.Sprintf("dev-%03d", i)
	}
	for i := range s.metrics {
		s.metrics[i] = fmt.Sprintf("point_%02d", i)
	}
	return s
}

func (s *benchSource) item(i int, rs []protocol.Reading) []protocol.Reading {
	rs = rs[:0]
	dev := s.devices[i%len(s.devices)]
	ts := baseTS + int64(i/len(s.devices))*1000
	for j, m := range s.metrics {
		rs = append(rs, protocol.Reading{Device: dev, Metric: m, TS: ts, Value: float64(i*30+j) * 0.1})
	}
	return rs
}

// BenchmarkQueueAppendAck measures the durable queue end to end, one op =
// one item of 30 readings: 16 producers Add (encoding in their goroutine,
// group commit with fsync every benchCommitInterval or 2048 items), a
// consumer forms batches of up to 10,000 readings (64 per request) and
// acknowledges each at once (deleting its items). The clock stops when
// every item is committed and deleted again.
//
// In the same run it measures a bare bbolt loop over the same items:
// encode, Put, one fsync'ed transaction per group of the size the queue's
// commits had on average, no deletes. It reports readings/s for both and
// their ratio.
//
//	go test -run '^$' -bench QueueAppendAck -benchtime 300000x ./edge/queue/
func BenchmarkQueueAppendAck(b *testing.B) {
	src := newBenchSource()
	dir := b.TempDir()
	ctx := context.Background()

	q, err := New(Config{Path: filepath.Join(dir, "queue.db"), Gateway: testGateway, MaxBytes: 1 << 30, CommitInterval: benchCommitInterval}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer q.Stop()

	b.ResetTimer()
	start := time.Now()
	consumed := make(chan error, 1)
	go func() {
		total := 0
		for total < b.N*30 {
			bs, err := q.Next(ctx, Live, protocol.MaxBatchReadings, 64)
			if err != nil {
				consumed <- err
				return
			}
			for _, bt := range bs {
				total += bt.Readings
				q.Ack(bt.Seq)
			}
			if len(bs) == 0 {
				<-q.Notify()
			}
		}
		consumed <- nil
	}()
	const producers = 16
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			var last *Commit
			var rs []protocol.Reading
			for i := p; i < b.N; i += producers {
				rs = src.item(i, rs)
				for {
					c, err := q.Add(rs)
					if errors.Is(err, ErrOverloaded) {
						q.Flush(ctx) // the writer is behind: let it catch up
						continue
					}
					if err != nil {
						b.Error(err)
						return
					}
					last = c
					break
				}
			}
			if last != nil {
				if err := last.Wait(ctx); err != nil {
					b.Error(err)
				}
			}
		}(p)
	}
	wg.Wait()
	if err := <-consumed; err != nil {
		b.Fatal(err)
	}
	if err := q.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	st := q.Stats()
	if st.Items != 0 || st.CommittedReadings != int64(b.N)*30 || st.DroppedReadings != 0 {
		b.Fatalf("queue not drained or lost readings: %+v", st)
	}
	queueRate := float64(b.N*30) / elapsed.Seconds()
	group := max(1, b.N/int(max(1, st.Commits)))

	bare := bareLoop(b, filepath.Join(dir, "bare.db"), src, b.N, group)
	bareRate := float64(b.N*30) / bare.Seconds()
	b.ReportMetric(queueRate, "readings/s")
	b.ReportMetric(bareRate, "bare_readings/s")
	b.ReportMetric(queueRate/bareRate, "ratio")
	b.ReportMetric(float64(st.Commits)/elapsed.Seconds(), "commits/s")
}

// bareLoop appends the items to a fresh bbolt file in transactions of
// group items, with the queue's item encoding and key scheme, and returns
// the time it took.
func bareLoop(b *testing.B, path string, src *benchSource, n, group int) time.Duration {
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucketItems); return err }); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	key := uint64(1)
	var rs []protocol.Reading
	for i := 0; i < n; i += group {
		err := db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucketItems)
			bk.FillPercent = 1.0
			for j := i; j < min(i+group, n); j++ {
				rs = src.item(j, rs)
				v, err := encodeItem(time.Now().UnixMilli(), rs)
				if err != nil {
					return err
				}
				if err := bk.Put(u64(key), v); err != nil {
					return err
				}
				key++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// benchCommitInterval is the group commit interval of the benchmark: a
// commit every few milliseconds, as on a disk that syncs in well under one
// (the agent's default of 50ms is for SD cards).
var benchCommitInterval = 10 * time.Millisecond
