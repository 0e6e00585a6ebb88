// Command gwload is the many-gateways load test of the cloud: it starts a
// real bin/cloud (embedded broker and ingest) on loopback with an
// organisation of -gateways gateways, connects that many simulated
// version-2 gateways, each sending a batch every -interval and waiting for
// commit acknowledgements, then drops every connection at once by killing
// and restarting bin/cloud (a reconnect storm: the gateways come back with
// the edge uplink's jittered, doubling backoff). It prints one "key value"
// line per figure: connections held, readings/s, publish → commit-ack
// latency, cloud RSS per gateway, and the storm's settle time.
//
//	go run ./cloud/bench/gwload -cloud bin/cloud -gateways 1000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/plantroom/plantroom/cloud/app"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/edge/uplink"
	"github.com/plantroom/plantroom/internal/procstat"
	"github.com/plantroom/plantroom/protocol"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gwload:", err)
		os.Exit(1)
	}
}

type options struct {
	cloud, configs, chAddr, db string
	gateways, readings         int
	interval, steady, timeout  time.Duration
	resend                     time.Duration
}

func run() error {
	var o options
	flag.StringVar(&o.cloud, "cloud", "bin/cloud", "the cloud binary")
	flag.StringVar(&o.configs, "configs", "configs", "folder with tariffs.yaml, rules.yaml and templates/")
	flag.StringVar(&o.chAddr, "clickhouse", envOr("CLICKHOUSE_ADDR", "127.0.0.1:19000"), "ClickHouse native address")
	flag.StringVar(&o.db, "database", "plantroom_gwload", "database (dropped and recreated)")
	flag.IntVar(&o.gateways, "gateways", 1000, "simulated gateways")
	flag.IntVar(&o.readings, "readings", 15, "readings per batch")
	flag.DurationVar(&o.interval, "interval", 10*time.Second, "between two batches of a gateway")
	flag.DurationVar(&o.steady, "steady", 60*time.Second, "measured steady phase")
	flag.DurationVar(&o.resend, "commit-timeout", 30*time.Second, "a gateway re-sends a batch not acknowledged for this long")
	flag.DurationVar(&o.timeout, "storm-timeout", 5*time.Minute, "give up waiting for the storm to settle")
	flag.Parse()

	dir, err := os.MkdirTemp("", "gwload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	secret := "gwload-secret"
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		return err
	}
	refs := gatewayRefs(o.gateways)
	brokerAddr, metricsAddr := freePort(), freePort()
	cfgPath, err := writeConfigs(dir, o, refs, string(hash), brokerAddr, metricsAddr)
	if err != nil {
		return err
	}
	if err := dropDatabase(o); err != nil {
		return err
	}

	cl := &cloudProc{bin: o.cloud, cfg: cfgPath, log: filepath.Join(dir, "cloud.log"), addr: brokerAddr}
	if err := cl.start(); err != nil {
		return err
	}
	defer cl.kill()
	time.Sleep(2 * time.Second) // let the start settle before the idle RSS
	idleRSS := rss(cl.pid())

	st := &stats{}
	gws := make([]*gateway, len(refs))
	for i, ref := range refs {
		gws[i] = newGateway(ref, secret, brokerAddr, o, st)
	}
	t0 := time.Now()
	for _, g := range gws {
		go g.run()
		time.Sleep(time.Millisecond) // 1,000 connections within a second or two
	}
	if err := waitUntil(2*time.Minute, func() bool { return st.connected.Load() == int64(len(gws)) }); err != nil {
		return fmt.Errorf("only %d of %d gateways connected: %w (cloud log %s)", st.connected.Load(), len(gws), err, cl.tail())
	}
	say("%d gateways connected in %s", len(gws), time.Since(t0).Round(time.Millisecond))

	// Steady phase: one interval to reach the rate, then measure.
	time.Sleep(o.interval)
	st.reset()
	time.Sleep(o.steady)
	steady := st.snapshot()
	held := st.connected.Load()
	loadRSS := rss(cl.pid())

	// The storm: every connection dropped at once.
	say("reconnect storm: killing and restarting bin/cloud")
	storm := time.Now()
	cl.kill()
	if err := cl.start(); err != nil {
		return err
	}
	restarted := time.Since(storm)
	var reconnected time.Duration
	settled := waitUntil(o.timeout, func() bool {
		if st.connected.Load() != int64(len(gws)) {
			return false
		}
		if reconnected == 0 {
			reconnected = time.Since(storm)
		}
		for _, g := range gws {
			if g.oldestUnacked().Before(storm.Add(restarted)) && !g.oldestUnacked().IsZero() {
				return false
			}
		}
		return true
	})
	settle := time.Since(storm)
	for _, g := range gws {
		g.stop()
	}
	lost := int64(0)
	for _, g := range gws {
		lost += int64(g.unackedCount())
	}

	lat := steady.latencies
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("gateways %d\n", len(gws))
	fmt.Printf("connections_held %d\n", held)
	fmt.Printf("readings_per_s %.0f\n", float64(steady.ackedReadings)/o.steady.Seconds())
	fmt.Printf("batches_acked %d\n", steady.acked)
	fmt.Printf("ack_p50_ms %.1f\n", pct(lat, 0.50))
	fmt.Printf("ack_p99_ms %.1f\n", pct(lat, 0.99))
	fmt.Printf("ack_max_ms %.1f\n", pct(lat, 1))
	fmt.Printf("rss_idle_mib %.1f\n", float64(idleRSS)/(1<<20))
	fmt.Printf("rss_mib %.1f\n", float64(loadRSS)/(1<<20))
	fmt.Printf("rss_per_gateway_kib %.1f\n", float64(loadRSS-idleRSS)/1024/float64(len(gws)))
	fmt.Printf("cloud_restart_s %.1f\n", restarted.Seconds())
	fmt.Printf("storm_reconnected_s %.1f\n", reconnected.Seconds())
	fmt.Printf("storm_settle_s %.1f\n", settle.Seconds())
	fmt.Printf("storm_settled %v\n", settled == nil)
	fmt.Printf("unacked_at_end %d\n", lost)
	if settled != nil {
		return fmt.Errorf("the storm did not settle within %s (cloud log %s)", o.timeout, cl.tail())
	}
	return nil
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gwload: "+format+"\n", args...)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return -1
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

func waitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// gatewayRefs: company "load", 10 projects of gateways "gw-0000" … .
func gatewayRefs(n int) []protocol.GatewayRef {
	out := make([]protocol.GatewayRef, n)
	for i := range out {
		out[i] = protocol.GatewayRef{Company: "load", Project: fmt.Sprintf("p%02d", i%10), Gateway: fmt.Sprintf("gw-%04d", i)}
	}
	return out
}

var meterMetrics = []string{"voltage_l1_v", "voltage_l2_v", "voltage_l3_v", "current_l1_a", "current_l2_a", "current_l3_a",
	"power_l1_w", "power_l2_w", "power_l3_w", "pf_l1", "pf_l2", "pf_l3", "power_total_w", "frequency_hz", "energy_import_kwh"}

func writeConfigs(dir string, o options, refs []protocol.GatewayRef, hash, brokerAddr, metricsAddr string) (string, error) {
	c := config.Company{ID: "load", Name: "Load Test Property Co"}
	projects := map[string]int{}
	for _, r := range refs {
		pi, ok := projects[r.Project]
		if !ok {
			pi = len(c.Projects)
			projects[r.Project] = pi
			c.Projects = append(c.Projects, config.Project{ID: r.Project, Name: r.Project, TimeZone: "Asia/Shanghai",
				FloorAreaM2: 10000, Tariff: "sh-general"})
		}
		c.Projects[pi].Gateways = append(c.Projects[pi].Gateways, config.Gateway{ID: r.Gateway, Name: r.Gateway, PasswordHash: hash,
			Devices: []config.Device{{ID: r.Gateway + "-meter", Name: "meter", Kind: "meter", Template: "sdm630",
				Address: "tcp://127.0.0.1:9", UnitID: 1, PollInterval: config.D(o.interval)}}})
	}
	org := &config.Org{Companies: []config.Company{c}}
	abs := func(p string) string { a, _ := filepath.Abs(filepath.Join(o.configs, p)); return a }
	cfg := &app.Config{
		Org: filepath.Join(dir, "org.yaml"), Tariffs: abs("tariffs.yaml"), Templates: abs("templates"), Rules: abs("rules.yaml"),
		Components: []string{app.ComponentBroker, app.ComponentIngest},
		Log:        app.Log{Level: "warn", Format: "text"},
		Metrics:    app.Metrics{Listen: metricsAddr},
		ClickHouse: app.ClickHouse{Addr: o.chAddr, Database: o.db},
	}
	cfg.Broker.Listen = brokerAddr
	for _, f := range []struct {
		path string
		v    any
	}{{cfg.Org, org}, {filepath.Join(dir, "cloud.yaml"), cfg}} {
		data, err := yaml.Marshal(f.v)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(f.path, data, 0o600); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "cloud.yaml"), nil
}

func dropDatabase(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return store.DropDatabase(ctx, store.Options{Addr: o.chAddr}, o.db)
}

// cloudProc is the bin/cloud process under test.
type cloudProc struct {
	bin, cfg, log, addr string
	cmd                 *exec.Cmd
}

func (c *cloudProc) start() error {
	f, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	c.cmd = exec.Command(c.bin, "-config", c.cfg)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("cannot start %s: %w", c.bin, err)
	}
	return waitUntil(2*time.Minute, func() bool {
		conn, err := net.DialTimeout("tcp", c.addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

func (c *cloudProc) pid() int {
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

func (c *cloudProc) kill() {
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
		c.cmd = nil
	}
}

func (c *cloudProc) tail() string {
	data, _ := os.ReadFile(c.log)
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return "\n" + string(data)
}

// rss is a process's resident set in bytes (0 if unknown).
func rss(pid int) int64 {
	v, _ := procstat.RSS(pid)
	return v
}

// stats are the figures of all gateways.
type stats struct {
	connected     atomic.Int64
	mu            sync.Mutex
	latencies     []time.Duration
	acked         int64
	ackedReadings int64
}

type snapshot struct {
	latencies     []time.Duration
	acked         int64
	ackedReadings int64
}

func (s *stats) reset() {
	s.mu.Lock()
	s.latencies, s.acked, s.ackedReadings = nil, 0, 0
	s.mu.Unlock()
}

func (s *stats) snapshot() snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return snapshot{append([]time.Duration(nil), s.latencies...), s.acked, s.ackedReadings}
}

func (s *stats) ack(d time.Duration, readings int) {
	s.mu.Lock()
	s.latencies = append(s.latencies, d)
	s.acked++
	s.ackedReadings += int64(readings)
	s.mu.Unlock()
}

// gateway is one simulated version-2 gateway: it keeps every batch until a
// commit acknowledgement of its epoch covers it, re-sends what is not
// acknowledged within the commit timeout and, after a reconnect, at once.
type gateway struct {
	ref    protocol.GatewayRef
	secret string
	addr   string
	o      options
	st     *stats
	epoch  uint64

	mu      sync.Mutex
	seq     uint64
	kwh     float64 // the meter's import counter: it only rises, as a real one does
	pending map[uint64]*sentBatch
	client  paho.Client
	lost    chan struct{}
	done    chan struct{}
	once    sync.Once
}

type sentBatch struct {
	payload []byte
	first   time.Time // first publish
	last    time.Time // last publish
}

func newGateway(ref protocol.GatewayRef, secret, addr string, o options, st *stats) *gateway {
	return &gateway{ref: ref, secret: secret, addr: addr, o: o, st: st, epoch: protocol.NewEpoch(),
		kwh: 1000 * rand.Float64(), pending: map[uint64]*sentBatch{}, done: make(chan struct{})}
}

func (g *gateway) stop() { g.once.Do(func() { close(g.done) }) }

func (g *gateway) run() {
	backoff := uplink.DefaultReconnectMin
	next := time.Now().Add(time.Duration(rand.Int64N(int64(g.o.interval))))
	for {
		began := time.Now()
		if err := g.connect(); err == nil {
			g.st.connected.Add(1)
			g.resendAll()
			next = g.session(next)
			g.st.connected.Add(-1)
			if time.Since(began) > uplink.DefaultReconnectMax {
				backoff = uplink.DefaultReconnectMin
			}
		}
		select {
		case <-g.done:
			return
		case <-time.After(uplink.Jitter(backoff)):
		}
		backoff = min(2*backoff, uplink.DefaultReconnectMax)
	}
}

func (g *gateway) connect() error {
	lost := make(chan struct{})
	will := protocol.EncodeStatus(protocol.Status{Gateway: g.ref.Gateway, State: protocol.StateOffline, Reason: "last_will"})
	opts := paho.NewClientOptions().AddBroker("tcp://"+g.addr).SetClientID(g.ref.Gateway).
		SetUsername(g.ref.Gateway).SetPassword(g.secret).SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(10*time.Second).SetKeepAlive(30*time.Second).
		SetWriteTimeout(10*time.Second).SetBinaryWill(g.ref.Topic(protocol.KindStatus), will, 1, true).
		SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return fmt.Errorf("connect: %v", tok.Error())
	}
	if tok := c.Subscribe(g.ref.DownlinkFilter(), 1, g.onDown); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	online := protocol.EncodeStatus(protocol.Status{Gateway: g.ref.Gateway, State: protocol.StateOnline, TS: time.Now().UnixMilli(), Agent: "gwload"})
	c.Publish(g.ref.Topic(protocol.KindStatus), 1, true, online)
	g.mu.Lock()
	g.client, g.lost = c, lost
	g.mu.Unlock()
	return nil
}

// session sends a batch every interval and re-sends overdue ones until the
// connection is lost or the test stops; it returns the next send time.
func (g *gateway) session(next time.Time) time.Time {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-g.done:
			g.client.Disconnect(0)
			return next
		case <-g.lost:
			return next
		case now := <-tick.C:
			if !now.Before(next) {
				g.send(now)
				next = next.Add(g.o.interval)
			}
			g.resendOverdue(now)
		}
	}
}

func (g *gateway) send(now time.Time) {
	g.mu.Lock()
	g.seq++
	b := &protocol.Batch{Gateway: g.ref.Gateway, Epoch: g.epoch, Seq: g.seq, SentAt: now.UnixMilli()}
	dev := g.ref.Gateway + "-meter"
	for i := 0; i < g.o.readings; i++ {
		m, v := meterMetrics[i%len(meterMetrics)], 100+rand.Float64()
		if m == "energy_import_kwh" {
			// At most 36 kW over the 10 s between batches: a plausible step
			// for the SDM630's 70 kW, so the counter walk raises nothing.
			g.kwh += 0.1 * rand.Float64()
			v = g.kwh
		}
		b.Readings = append(b.Readings, protocol.Reading{Device: dev, Metric: m,
			TS: now.UnixMilli() - int64(i/len(meterMetrics))*1000, Value: v})
	}
	p, err := protocol.AppendBatch(nil, b)
	if err != nil {
		panic("BUG: " + err.Error())
	}
	g.pending[g.seq] = &sentBatch{payload: p, first: now, last: now}
	c := g.client
	g.mu.Unlock()
	c.Publish(g.ref.Topic(protocol.KindTelemetry), 1, false, p)
}

func (g *gateway) resendOverdue(now time.Time) {
	g.mu.Lock()
	var again [][]byte
	for _, b := range g.pending {
		if now.Sub(b.last) >= g.o.resend {
			b.last = now
			again = append(again, b.payload)
		}
	}
	c := g.client
	g.mu.Unlock()
	for _, p := range again {
		c.Publish(g.ref.Topic(protocol.KindTelemetry), 1, false, p)
	}
}

func (g *gateway) resendAll() {
	g.mu.Lock()
	var again [][]byte
	now := time.Now()
	for _, b := range g.pending {
		b.last = now
		again = append(again, b.payload)
	}
	c := g.client
	g.mu.Unlock()
	for _, p := range again {
		c.Publish(g.ref.Topic(protocol.KindTelemetry), 1, false, p)
	}
}

func (g *gateway) onDown(_ paho.Client, m paho.Message) {
	if !strings.HasSuffix(m.Topic(), "/"+protocol.DownAck) {
		return
	}
	a, err := protocol.DecodeAck(m.Payload())
	if err != nil || a.Epoch != g.epoch {
		return
	}
	now := time.Now()
	g.mu.Lock()
	var done []time.Duration
	for seq, b := range g.pending {
		if a.Covers(seq) {
			done = append(done, now.Sub(b.first))
			delete(g.pending, seq)
		}
	}
	for _, r := range a.Rejected {
		delete(g.pending, r.Seq)
	}
	g.mu.Unlock()
	for _, d := range done {
		g.st.ack(d, g.o.readings)
	}
}

func (g *gateway) oldestUnacked() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	var oldest time.Time
	for _, b := range g.pending {
		if oldest.IsZero() || b.first.Before(oldest) {
			oldest = b.first
		}
	}
	return oldest
}

func (g *gateway) unackedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending)
}
