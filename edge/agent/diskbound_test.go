package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/edge/internal/modbustest"
	"github.com/plantroom/plantroom/internal/nettest"
	"github.com/plantroom/plantroom/protocol"
)

// writeBusyTemplate writes a template of n uint16 holding registers, for
// devices whose every value changes at every poll.
func writeBusyTemplate(t testing.TB, dir string, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("id: busy\nname: Busy test device\nkind: other\nprotocol: modbus\npoints:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - {metric: p%03d, register: holding, address: %d, type: uint16}\n", i, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "busy.yaml"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startBusyDevices serves n devices whose registers change on every read.
func startBusyDevices(t testing.TB, n int) []*modbustest.Server {
	t.Helper()
	var out []*modbustest.Server
	for i := 0; i < n; i++ {
		s, err := modbustest.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		out = append(out, s)
	}
	return out
}

// The queue reaches its bound while the cloud is unreachable: the oldest
// readings are dropped and counted, a queue_overflow event goes out, polling
// goes on, the file stays bounded, and what was not dropped arrives.
func TestDiskBoundDropsOldestAndKeepsRunning(t *testing.T) {
	cloud, _ := startCloud(t)
	path := nettest.NewProxy(t, cloud.Addr())
	path.Cut(nettest.CutReset)
	dir := t.TempDir()
	tdir := filepath.Join(dir, "templates")
	os.Mkdir(tdir, 0o700)
	writeBusyTemplate(t, tdir, 100)
	var devs strings.Builder
	devs.WriteString("devices:\n")
	for i, s := range startBusyDevices(t, 3) {
		fmt.Fprintf(&devs, "  - {id: busy-%d, template: busy, address: \"tcp://%s\", unit_id: 1, poll_interval: 20ms, timeout: 500ms}\n", i, s.Addr())
	}
	text := agentYAML(path.URL(), dir, devs.String())
	text = replaceOnce(t, text, "templates: "+templatesDir, "templates: "+tdir)
	text = replaceOnce(t, text, "queue: {path: ", "queue: {max_bytes: 1MiB, path: ")
	a := startAgent(t, text)

	waitFor(t, 60*time.Second, "readings dropped at the bound", func() bool { return a.queue.Stats().DroppedReadings > 0 })
	polls := a.poller.Stats()["busy-0"].Polls
	dropped := a.queue.Stats().DroppedReadings
	waitFor(t, 30*time.Second, "polling and dropping to go on", func() bool {
		return a.poller.Stats()["busy-0"].Polls > polls+20 && a.queue.Stats().DroppedReadings > dropped
	})
	st := a.queue.Stats()
	if st.Bytes > 1<<20 {
		t.Fatalf("queue holds %d bytes, bound 1MiB", st.Bytes)
	}
	if st.FileBytes > 4<<20 {
		t.Fatalf("queue file grew to %d bytes for a 1MiB bound", st.FileBytes)
	}
	m := scrape(t, a.HTTPAddr())
	if m["plantroom_edge_queue_dropped_readings_total"] <= 0 || m[`plantroom_edge_readings_rejected_total{cause="overloaded"}`] != 0 {
		t.Fatalf("dropped %v, refused %v", m["plantroom_edge_queue_dropped_readings_total"], m[`plantroom_edge_readings_rejected_total{cause="overloaded"}`])
	}

	path.Restore()
	waitFor(t, 30*time.Second, "queue_overflow event at the cloud", func() bool { return hasEvent(events(t, cloud), protocol.EventQueueOverflow, "") })
	for _, e := range events(t, cloud) {
		if e.Kind == protocol.EventQueueOverflow && (e.Attrs["dropped"] <= 0 || e.Attrs["dropped"] > float64(a.queue.Stats().DroppedReadings)) {
			t.Fatalf("overflow event %+v", e)
		}
	}
	a.poller.Stop()
	if err := a.queue.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "queue drained", func() bool { st := a.queue.Stats(); return st.Items == 0 && st.InFlightBatches == 0 })
	st = a.queue.Stats()
	got := decodeTelemetry(t, cloud.Messages(testGW.Topic(protocol.KindTelemetry)))
	// Every committed reading arrived unless the bound dropped it. A
	// dropped batch that was already sent and awaited its commit
	// acknowledgement may have arrived too (DroppedSentReadings); one
	// dropped before it was sent never does.
	n := int64(len(got.distinct()))
	if lo, hi := st.CommittedReadings-st.DroppedReadings, st.CommittedReadings-st.DroppedReadings+st.DroppedSentReadings; n < lo || n > hi {
		t.Fatalf("delivered %d, want %d…%d (committed %d, dropped %d of which %d already sent)",
			n, lo, hi, st.CommittedReadings, st.DroppedReadings, st.DroppedSentReadings)
	}
	got.lanesOrdered(t)
	got.noReadingInTwoSeqs(t)
}
