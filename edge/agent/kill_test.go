package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/edge/internal/mqtttest"
	"github.com/plantroom/plantroom/edge/queue"
	"github.com/plantroom/plantroom/internal/nettest"
	"github.com/plantroom/plantroom/internal/testenv"
	"github.com/plantroom/plantroom/protocol"
)

// childEnv makes the test binary run as the edge agent (what
// cmd/edge-agent does) with the configuration file it names.
const childEnv = "PLANTROOM_EDGE_AGENT_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(m.Run())
}

func runChild(path string) int {
	log := slog.New(slog.DiscardHandler)
	if os.Getenv(childEnv+"_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	cfg, err := Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	a, err := New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	if err := a.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	<-sigs
	a.Stop()
	return 0
}

// startChild runs the agent as a separate process.
func startChild(t *testing.T, configPath string) *exec.Cmd {
	t.Helper()
	cmd := testenv.SelfCommand("-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+configPath)
	cmd.Stderr = os.Stderr // errors; logs too with -v
	if testing.Verbose() {
		cmd.Env = append(cmd.Env, childEnv+"_LOG=1")
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// committed scrapes the child's committed-readings counter; -1 while its
// endpoint is not up.
func committed(t *testing.T, addr string) float64 {
	t.Helper()
	m, err := scrapeMetrics(addr)
	if err != nil {
		return -1
	}
	v, ok := m["plantroom_edge_queue_committed_readings_total"]
	if !ok {
		return -1
	}
	return v
}

// Kill -9 of the agent while the cloud is unreachable, then a restart:
// every reading either run committed is delivered or still in the queue,
// batch seqs continue without a gap, and a seq re-sent after the crash
// carries the same payload as before.
func TestKill9DuringOutageLosesNothingCommitted(t *testing.T) {
	cloud, _ := startCloud(t)
	path := nettest.NewProxy(t, cloud.Addr())
	b := startSim(t, sim.MQTTConfig{},
		sim.DeviceConfig{ID: "meter-1", Template: "sdm630"},
		sim.DeviceConfig{ID: "elevator-1", Template: "elevator"},
	)
	dir := t.TempDir()
	httpAddr := nettest.FreeAddr(t)
	text := agentYAML(path.URL(), dir, "report: {heartbeat: 1s}\ndevices:\n"+
		deviceLine(b, "meter-1", "sdm630", "100ms")+deviceLine(b, "elevator-1", "elevator", "100ms"))
	text = replaceOnce(t, text, `http: {listen: "127.0.0.1:0"}`, fmt.Sprintf("http: {listen: %q}", httpAddr))
	configPath := writeConfig(t, dir, text)
	topic := testGW.Topic(protocol.KindTelemetry)

	first := startChild(t, configPath)
	waitFor(t, 30*time.Second, "first telemetry", func() bool { return len(cloud.Messages(topic)) > 3 })
	path.Cut(nettest.CutReset)
	atCut := committed(t, httpAddr)
	waitFor(t, 30*time.Second, "readings committed during the outage", func() bool { return committed(t, httpAddr) > atCut+400 })
	c1 := committed(t, httpAddr)
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()

	second := startChild(t, configPath)
	waitFor(t, 30*time.Second, "restarted agent committing", func() bool { return committed(t, httpAddr) > 200 })
	path.Restore()
	waitFor(t, 30*time.Second, "the first run's readings delivered", func() bool {
		return float64(len(decodeTelemetry(t, cloud.Messages(topic)).distinct())) > c1
	})
	c2 := committed(t, httpAddr)
	second.Process.Signal(syscall.SIGTERM)
	if err := second.Wait(); err != nil {
		t.Fatalf("agent did not stop cleanly: %v", err)
	}

	got := decodeTelemetry(t, cloud.Messages(topic))
	got.seqsContiguous(t)
	got.lanesOrdered(t)
	got.noReadingInTwoSeqs(t)
	delivered := len(got.distinct())
	leftMsgs := leftInQueue(t, filepath.Join(dir, "queue.db"))
	left := decodeTelemetry(t, leftMsgs).distinct()
	// Together, so that a batch still in flight must equal what the broker
	// got under the same seq.
	all := decodeTelemetry(t, append(cloud.Messages(topic), leftMsgs...)).distinct()
	if float64(len(all)) < c1+c2 {
		t.Fatalf("the two runs committed at least %.0f + %.0f readings; delivered %d, left in the queue %d, together %d",
			c1, c2, delivered, len(left), len(all))
	}
	st, ok := cloud.Retained(testGW.Topic(protocol.KindStatus))
	if s, err := protocol.DecodeStatus(st.Payload); !ok || err != nil || s.State != protocol.StateOffline || s.Reason != "shutdown" {
		t.Fatalf("status after the graceful stop: %+v %v", s, err)
	}
	t.Logf("committed ≥ %.0f (killed run) + %.0f (second run); delivered %d distinct readings in %d batches; %d left queued",
		c1, c2, delivered, len(got.payloads), len(left))
}

// leftInQueue returns, as telemetry messages, everything still in a
// stopped agent's queue file: the batches in flight and the rest.
func leftInQueue(t *testing.T, path string) []mqtttest.Message {
	t.Helper()
	q, err := queue.New(queue.Config{Path: path, Gateway: testGW.Gateway}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer q.Stop()
	var msgs []mqtttest.Message
	for _, o := range q.Outstanding() {
		b, err := q.Resend(o.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if b != nil {
			msgs = append(msgs, mqtttest.Message{Payload: b.Payload})
		}
	}
	for {
		bs, err := q.Next(context.Background(), queue.Backlog, protocol.MaxBatchReadings, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) == 0 {
			break
		}
		for _, b := range bs {
			msgs = append(msgs, mqtttest.Message{Payload: b.Payload})
		}
	}
	return msgs
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("test bug: %q not in configuration", old)
	}
	return strings.Replace(s, old, new, 1)
}
