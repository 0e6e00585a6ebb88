package agent

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/protocol"
)

func health(t *testing.T, addr string) Health {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// A cloud that receives batches but never acknowledges a commit: the agent
// keeps every reading (awaiting commit on /metrics and /healthz), re-sends
// them byte for byte, and reports degraded with the reason; once the
// acknowledgements come, everything leaves the queue and the status is ok.
func TestNoCommitAckDegradedThenRecovers(t *testing.T) {
	cloud, acker := startCloud(t)
	acker.Silent(true)
	b := startSim(t, sim.MQTTConfig{}, sim.DeviceConfig{ID: "meter-1", Template: "sdm630"})
	text := agentYAML(cloud.URL(), t.TempDir(), "devices:\n"+deviceLine(b, "meter-1", "sdm630", "100ms"))
	text = replaceOnce(t, text, "  commit_timeout: 1s\n", "  commit_timeout: 500ms\n  commit_degraded_after: 1s\n")
	a := startAgent(t, text)

	waitFor(t, 20*time.Second, "degraded for want of commit acknowledgements", func() bool {
		h := health(t, a.HTTPAddr())
		return h.Status == "degraded" && len(h.Reasons) > 0 && strings.Contains(h.Reasons[0], "no commit acknowledgement")
	})
	h := health(t, a.HTTPAddr())
	if !h.Uplink.Connected || h.Queue.AwaitingCommitReadings == 0 || h.Queue.AwaitingCommitBatches == 0 || h.Queue.DrainSeconds <= 0 ||
		h.Uplink.CommitWaitSeconds < 1 || len(h.Reasons) != 1 {
		t.Fatalf("health without acknowledgements: %+v", h)
	}
	m := scrape(t, a.HTTPAddr())
	if m[`plantroom_edge_queue_readings{state="awaiting_commit"}`] == 0 || m[`plantroom_edge_queue_batches{state="awaiting_commit"}`] == 0 ||
		m["plantroom_edge_uplink_commit_timeouts_total"] == 0 {
		t.Fatalf("metrics without acknowledgements: awaiting %v readings, %v batches, %v commit timeouts",
			m[`plantroom_edge_queue_readings{state="awaiting_commit"}`], m[`plantroom_edge_queue_batches{state="awaiting_commit"}`],
			m["plantroom_edge_uplink_commit_timeouts_total"])
	}
	if st := a.queue.Stats(); st.DroppedReadings != 0 || st.Readings == 0 {
		t.Fatalf("queue without acknowledgements: %+v", st)
	}

	acker.Silent(false)
	a.poller.Stop()
	if err := a.queue.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	committed := a.queue.Stats().CommittedReadings
	waitFor(t, 30*time.Second, "queue drained", func() bool { st := a.queue.Stats(); return st.Items == 0 && st.AwaitingBatches == 0 })
	waitFor(t, 10*time.Second, "status ok", func() bool { return health(t, a.HTTPAddr()).Status == "ok" })
	tm := decodeTelemetry(t, cloud.Messages(testGW.Topic(protocol.KindTelemetry)))
	if got := int64(len(tm.distinct())); got != committed {
		t.Fatalf("the queue committed %d readings, the broker got %d distinct ones", committed, got)
	}
	tm.noReadingInTwoSeqs(t)
}
