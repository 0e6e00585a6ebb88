// Command agentload measures the edge agent's CPU and memory under a Modbus
// polling load, looking at the agent's process alone:
//
//	go run ./edge/bench/agentload -agent bin/edge-agent [-devices 500] [-points 30] [-interval 1s] [-duration 30s]
//	go run ./edge/bench/agentload -agent edge-agent-armv7 -exec qemu-arm-static ...   # a 32-bit ARM build, emulated
//
// It serves the devices itself (Modbus TCP on loopback, every register
// changing at every read, so report by exception lets every value through:
// the worst case for the queue and the uplink), runs an in-process MQTT
// broker as the cloud (its inline client acknowledging every batch's
// commit, as the ingest does), starts the agent binary as a child process, lets it
// warm up, then samples the child's /proc/<pid>/stat (utime+stime) and
// /proc/<pid>/status (VmRSS) for the measuring window and scrapes the
// agent's /metrics at both ends to show the load it carried. The load
// generator and the broker run in this process, so their CPU is not counted.
// It ends with machine-readable lines: points_per_s, cpu_pct (of one core),
// cpu_pct_per_1000_points_s and rss_mib (the largest VmRSS sampled).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/plantroom/plantroom/edge/internal/modbustest"
	"github.com/plantroom/plantroom/internal/procstat"
	"github.com/plantroom/plantroom/internal/promtext"
	"github.com/plantroom/plantroom/protocol"
)

func main() {
	agentBin := flag.String("agent", "bin/edge-agent", "edge agent binary")
	devices := flag.Int("devices", 500, "simulated Modbus devices")
	points := flag.Int("points", 30, "uint16 points per device (one request each poll)")
	interval := flag.Duration("interval", time.Second, "poll interval")
	warmup := flag.Duration("warmup", 10*time.Second, "time before measuring")
	duration := flag.Duration("duration", 30*time.Second, "measuring window")
	emulator := flag.String("exec", "", "run the agent through this program (e.g. qemu-arm-static for an ARM build); its process is the one measured")
	flag.Parse()
	if err := run(*agentBin, *emulator, *devices, *points, *interval, *warmup, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "agentload:", err)
		os.Exit(1)
	}
}

func run(agentBin, emulator string, devices, points int, interval, warmup, duration time.Duration) error {
	dir, err := os.MkdirTemp("", "agentload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	servers := make([]*modbustest.Server, devices)
	for i := range servers {
		if servers[i], err = modbustest.Start("127.0.0.1:0"); err != nil {
			return err
		}
		defer servers[i].Close()
	}
	broker, brokerAddr, err := startBroker()
	if err != nil {
		return err
	}
	defer broker.Close()
	httpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	cfgPath, err := writeConfig(dir, brokerAddr, httpAddr, servers, points, interval)
	if err != nil {
		return err
	}

	cmd := exec.Command(agentBin, "-config", cfgPath)
	if emulator != "" {
		cmd = exec.Command(emulator, agentBin, "-config", cfgPath)
	}
	logFile, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start %q: %w", agentBin, err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	pid := cmd.Process.Pid
	if err := waitHealthy(httpAddr, 30*time.Second); err != nil {
		return err
	}
	time.Sleep(warmup)

	m0, err := scrape(httpAddr)
	if err != nil {
		return err
	}
	cpu0, err := cpuTicks(pid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	var rssMax, rssSum, samples int64
	for time.Since(t0) < duration {
		time.Sleep(time.Second)
		rss, err := procstat.Status(pid, "VmRSS")
		if err != nil {
			return err
		}
		rssMax = max(rssMax, rss)
		rssSum += rss
		samples++
	}
	cpu1, err := cpuTicks(pid)
	if err != nil {
		return err
	}
	elapsed := time.Since(t0).Seconds()
	m1, err := scrape(httpAddr)
	if err != nil {
		return err
	}
	hwm, _ := procstat.Status(pid, "VmHWM")

	rate := func(name string) float64 { return (m1.Sum(name) - m0.Sum(name)) / elapsed }
	cpuPct := float64(cpu1-cpu0) / clockTicks / elapsed * 100
	fmt.Printf("edge agent under load: %d devices × %d points every %s (%.0f points/s offered), %s warm-up, %.0fs measured, pid %d\n",
		devices, points, interval, float64(devices*points)/interval.Seconds(), warmup, elapsed, pid)
	fmt.Printf("  points read            %10.0f /s\n", rate(mPointsRead))
	fmt.Printf("  readings queued        %10.0f /s\n", rate("plantroom_edge_readings_taken_total"))
	fmt.Printf("  readings published     %10.0f /s\n", rate(mPublished))
	fmt.Printf("  Modbus read errors     %10.0f\n", m1.Sum(mReadErrors)-m0.Sum(mReadErrors))
	fmt.Printf("  queued, not yet sent   %10.0f readings at the end (live batches leave every batch_max_delay)\n",
		m1.Sum("plantroom_edge_queue_readings", "state", "live")+m1.Sum("plantroom_edge_queue_readings", "state", "backlog"))
	fmt.Printf("  CPU (utime+stime)      %10.1f %% of one core   (target ≤ 20%%; the agent's own process_cpu_seconds_total says %.1f %%)\n",
		cpuPct, rate("process_cpu_seconds_total")*100)
	fmt.Printf("  RSS                    %10.1f MiB average, %.1f MiB max, %.1f MiB high-water   (target ≤ 64 MiB)\n",
		float64(rssSum)/float64(max(samples, 1))/1024, float64(rssMax)/1024, float64(hwm)/1024)
	if sent, queued := m1.Sum(mPublished), m1.Sum("plantroom_edge_readings_taken_total"); sent > queued {
		return fmt.Errorf("the agent published %.0f readings but queued only %.0f: readings were sent twice", sent, queued)
	}
	if n := m1.Sum("plantroom_edge_uplink_commit_timeouts_total"); n > 0 {
		return fmt.Errorf("%.0f batches waited longer than commit_timeout for their commit acknowledgement", n)
	}
	// Machine-readable figures (scripts/bench.sh reads these).
	pps := rate(mPointsRead)
	fmt.Printf("points_per_s %.0f\n", pps)
	fmt.Printf("cpu_pct %.2f\n", cpuPct)
	fmt.Printf("cpu_pct_per_1000_points_s %.3f\n", cpuPct/max(pps, 1)*1000)
	fmt.Printf("rss_mib %.1f\n", float64(rssMax)/1024)
	return nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (100 on Linux).
const clockTicks = 100

// cpuTicks returns utime+stime of a process.
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read the agent's CPU time: %w", err)
	}
	// The command name may hold spaces; fields count from after its ")".
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, errors.New("cannot parse /proc/<pid>/stat")
	}
	u, _ := strconv.ParseInt(f[11], 10, 64) // field 14 of the full line
	k, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return u + k, nil
}

// startBroker runs the cloud's stand-in: a broker whose inline client
// plays the ingest, answering every batch with a commit acknowledgement
// on the gateway's down/ack (the agent keeps a batch until then).
func startBroker() (*mqtt.Server, string, error) {
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler), InlineClient: true})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, "", err
	}
	err := s.Subscribe(protocol.SubscriptionFilter(protocol.KindTelemetry), 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		ref, _, err := protocol.ParseTopic(pk.TopicName)
		var b protocol.Batch
		if err != nil || protocol.DecodeBatch(pk.Payload, &b) != nil {
			return
		}
		ack := protocol.Ack{Epoch: b.Epoch, Committed: []protocol.SeqRange{{b.Seq, b.Seq}}, TS: time.Now().UnixMilli()}
		s.Publish(ref.DownlinkTopic(protocol.DownAck), protocol.EncodeAck(ack), false, 1)
	})
	if err != nil {
		return nil, "", err
	}
	l := listeners.NewTCP(listeners.Config{ID: "cloud", Address: "127.0.0.1:0"})
	if err := s.AddListener(l); err != nil {
		return nil, "", err
	}
	if err := s.Serve(); err != nil {
		return nil, "", err
	}
	return s, l.Address(), nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func writeConfig(dir, broker, httpAddr string, servers []*modbustest.Server, points int, interval time.Duration) (string, error) {
	tdir := filepath.Join(dir, "templates")
	if err := os.Mkdir(tdir, 0o700); err != nil {
		return "", err
	}
	var t strings.Builder
	t.WriteString("id: load\nname: Load test device\nkind: other\nprotocol: modbus\npoints:\n")
	for i := 0; i < points; i++ {
		fmt.Fprintf(&t, "  - {metric: p%03d, register: holding, address: %d, type: uint16, scale: 0.1}\n", i, i)
	}
	if err := os.WriteFile(filepath.Join(tdir, "load.yaml"), []byte(t.String()), 0o600); err != nil {
		return "", err
	}
	var c strings.Builder
	fmt.Fprintf(&c, `gateway: {id: gw-load-1, company: acme, project: load, password: load-secret}
templates: %s
uplink: {broker: "tcp://%s"}
queue: {path: %s}
http: {listen: %q}
devices:
`, tdir, broker, filepath.Join(dir, "queue.db"), httpAddr)
	for i, s := range servers {
		fmt.Fprintf(&c, "  - {id: dev-%03d, template: load, address: \"tcp://%s\", unit_id: 1, poll_interval: %s, timeout: 1s}\n", i, s.Addr(), interval)
	}
	path := filepath.Join(dir, "edge.yaml")
	return path, os.WriteFile(path, []byte(c.String()), 0o600)
}

func waitHealthy(addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the agent did not answer on %s within %s", addr, timeout)
}

// The per-device series the report sums.
const (
	mPointsRead = "plantroom_edge_modbus_points_read_total"
	mReadErrors = "plantroom_edge_modbus_read_errors_total"
	mPublished  = "plantroom_edge_uplink_readings_published_total"
)

// scrape reads the agent's metrics.
func scrape(addr string) (*promtext.Metrics, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return promtext.Scrape(ctx, "http://"+addr+"/metrics")
}
