package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/plantroom/plantroom/cloud/app"
	"github.com/plantroom/plantroom/internal/nettest"
)

// layout is how the cloud components are split into processes.
type layout int

const (
	oneCloud    layout = iota // one process: broker, ingest, api
	brokerApart               // [broker] and [ingest, api]: the broker can restart alone
	ingestApart               // [broker, api] and [ingest]: the ingest can be killed alone
)

// standSpec is what a drill needs of its stand.
type standSpec struct {
	layout      layout
	heavy       bool          // the disk-bound building (see building)
	queueBytes  int64         // edge queue bound; 0: the agent's default
	backlogRate float64       // edge backlog drain, readings/s; 0: the agent's default
	chMode      string        // "" (the drill database on the common server), CHPrivate, CHShared or CHProxy
	ingestFlush time.Duration // ingest flush_interval; 0: 200ms
	batchMax    int           // edge batch_max_readings; 0: 200
	// mosquitto: the broker is a Debian mosquitto process (persistence
	// false, its default) instead of bin/cloud's; the ingest (with the
	// API) runs apart and connects to it.
	mosquitto bool
	noStore   bool // the embedded broker runs without store_path
	replicas  int  // ingest processes on a shared subscription (mosquitto); 0: one
	// lateIngest: Start runs the broker, the building and the edge, not
	// the ingest: the drill starts it.
	lateIngest bool
	// ingestLink: the ingest reaches the broker through a link the drill
	// can cut (Stand.ingestLink).
	ingestLink bool
	// commitTimeout is the edge's uplink.commit_timeout; 0:
	// drillCommitTimeout. Drills whose ingest flushes every 2 s take a
	// longer one, so that the edge does not re-send what the ingest holds.
	commitTimeout time.Duration
}

// Stand is one drill's running system: a simulated building, the edge
// agent, the cloud process(es), a database of its own, and the links the
// drill cuts. Everything listens on free loopback ports and lives in its
// own temporary directory.
type Stand struct {
	name string
	dir  string
	opts *Options
	spec standSpec
	log  *slog.Logger

	ch      chTarget
	conn    driver.Conn
	tmplDir string // device templates of every process
	devices []simDevice
	speed   float64
	poll    time.Duration

	brokerAddr, edgeHTTP, apiAddr, control string
	gwSecret, ingestSecret, ingestHash     string
	token                                  string

	uplink     *nettest.Proxy // edge → broker
	ingestLink *nettest.Proxy // ingest → broker, with spec.ingestLink

	mosq *Process // the mosquitto broker, with spec.mosquitto
	// ingestProcs are the processes running an ingest (replicas first to
	// last); metricsOf gives each one's metrics address.
	ingestProcs []*Process
	metricsOf   map[*Process]string

	brokerProc, ingestProc, apiProc *Process // the cloud process running each component
	ingestMetrics                   string   // metrics address of the ingest's process
	cloudProcs                      []*Process
	devsim, edge                    *Process

	// Readings committed and dropped by earlier runs of the edge agent
	// (its counters start at 0 on every start).
	committedBefore, droppedBefore int64
	// Readings committed by earlier runs of the ingest, as last scraped
	// before it was killed (a lower bound).
	insertedBefore int64
}

// newStand writes the stand's configuration; Start runs it.
func newStand(ctx context.Context, opts *Options, name string, spec standSpec) (s *Stand, err error) {
	dir, err := os.MkdirTemp(opts.work, "drill-"+name+"-")
	if err != nil {
		return nil, fmt.Errorf("cannot create the drill directory: %w", err)
	}
	s = &Stand{name: name, dir: dir, opts: opts, spec: spec, log: opts.log.With("drill", name)}
	defer func() {
		if err != nil {
			s.Close(ctx, false)
		}
	}()
	if err := os.MkdirAll(s.path("edge"), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the edge directory: %w", err)
	}
	if err := s.setupClickHouse(ctx); err != nil {
		return nil, err
	}
	s.tmplDir = filepath.Join(opts.configs, "templates")
	if spec.heavy {
		// Every change of every value is reported, so the queue fills in
		// seconds rather than minutes.
		s.tmplDir = s.path("templates")
		if err := copyTemplates(filepath.Join(opts.configs, "templates"), s.tmplDir); err != nil {
			return nil, err
		}
	}
	s.devices, s.speed, s.poll = building(spec.heavy)
	ports, err := freePorts(len(s.devices) + 7)
	if err != nil {
		return nil, err
	}
	for i := range s.devices {
		s.devices[i].Listen, s.devices[i].UnitID = ports[i], 1
	}
	p := ports[len(s.devices):]
	s.control, s.brokerAddr, s.edgeHTTP, s.apiAddr = p[0], p[1], p[2], p[3]
	metricsA, metricsB, metricsC := p[4], p[5], p[6]

	s.gwSecret, s.ingestSecret, s.token = randomSecret(), randomSecret(), randomSecret()
	gwHash, err := app.HashPassword(s.gwSecret)
	if err != nil {
		return nil, err
	}
	if s.ingestHash, err = app.HashPassword(s.ingestSecret); err != nil {
		return nil, err
	}
	if s.uplink, err = nettest.ListenProxy(s.brokerAddr); err != nil {
		return nil, err
	}
	if spec.ingestLink {
		if s.ingestLink, err = nettest.ListenProxy(s.brokerAddr); err != nil {
			return nil, err
		}
	}

	if err := writeYAML(s.path("org.yaml"), orgFile(s.devices, s.poll, s.maxPowerKW, gwHash, app.HashToken(s.token))); err != nil {
		return nil, err
	}
	if err := s.writeCloud(metricsA, metricsB, metricsC); err != nil {
		return nil, err
	}
	bld := simBuilding{Building: "drill-" + name, TimeZone: drillTZ, Seed: 20261126,
		Clock: simClock{Speed: s.speed, Step: "1s"}, Tmpl: s.templates(), Control: s.control, Devices: s.devices}
	if err := writeYAML(s.path("building.yaml"), bld); err != nil {
		return nil, err
	}
	if err := writeYAML(s.path("edge.yaml"), edgeFile(s)); err != nil {
		return nil, err
	}
	env := childEnv()
	devsimBin, err := binary(opts.bin, "devsim")
	if err != nil {
		return nil, err
	}
	edgeBin, err := binary(opts.bin, "edge-agent")
	if err != nil {
		return nil, err
	}
	s.devsim = newProcess("devsim", devsimBin, []string{"-config", s.path("building.yaml")}, env, s.path("devsim.log"))
	s.edge = newProcess("edge-agent", edgeBin, []string{"-config", s.path("edge.yaml")}, env, s.path("edge.log"))
	return s, nil
}

func (s *Stand) setupClickHouse(ctx context.Context) error {
	shared, err := sharedServer()
	if err != nil {
		return err
	}
	s.ch = shared
	switch s.spec.chMode {
	case CHPrivate:
		srv, err := newCHServer(s.path("clickhouse"))
		if err != nil {
			return err
		}
		if err := srv.Start(ctx); err != nil {
			return err
		}
		s.ch = chTarget{addr: srv.tcp, user: "default", server: srv}
	case CHProxy:
		if s.ch.proxy, err = nettest.ListenProxy(s.ch.addr); err != nil {
			return err
		}
	}
	s.ch.database = fmt.Sprintf("drill_%s_%d", strings.ReplaceAll(s.name, "-", "_"), time.Now().Unix())
	conn, err := openCH(ctx, s.ch, "")
	if err != nil {
		return err
	}
	s.conn = conn
	return nil
}

// writeCloud writes the cloud process configurations for the layout.
func (s *Stand) writeCloud(metricsA, metricsB, metricsC string) error {
	s.metricsOf = map[*Process]string{}
	defer func() {
		if s.ingestProc != nil && len(s.ingestProcs) == 0 {
			s.ingestProcs = []*Process{s.ingestProc}
			s.metricsOf[s.ingestProc] = s.ingestMetrics
		}
	}()
	cloudBin, err := binary(s.opts.bin, "cloud")
	if err != nil {
		return err
	}
	proc := func(name string, cfg *app.Config) (*Process, error) {
		path := s.path(name + ".yaml")
		if err := writeYAML(path, cfg); err != nil {
			return nil, err
		}
		p := newProcess(name, cloudBin, []string{"-config", path}, childEnv(), s.path(name+".log"))
		s.cloudProcs = append(s.cloudProcs, p)
		return p, nil
	}
	all := []string{app.ComponentBroker, app.ComponentIngest, app.ComponentAPI}
	if s.spec.mosquitto {
		return s.writeMosquitto(proc, metricsA, metricsB, metricsC)
	}
	switch s.spec.layout {
	case oneCloud:
		p, err := proc("cloud", cloudFile(s, all, metricsA, s.apiAddr))
		if err != nil {
			return err
		}
		s.brokerProc, s.ingestProc, s.apiProc, s.ingestMetrics = p, p, p, metricsA
	case brokerApart:
		b, err := proc("broker", cloudFile(s, []string{app.ComponentBroker}, metricsA, s.apiAddr))
		if err != nil {
			return err
		}
		cfg := cloudFile(s, []string{app.ComponentIngest, app.ComponentAPI}, metricsB, s.apiAddr)
		ingestExternal(s, cfg)
		i, err := proc("ingest", cfg)
		if err != nil {
			return err
		}
		s.brokerProc, s.ingestProc, s.apiProc, s.ingestMetrics = b, i, i, metricsB
	case ingestApart:
		b, err := proc("broker", cloudFile(s, []string{app.ComponentBroker, app.ComponentAPI}, metricsA, s.apiAddr))
		if err != nil {
			return err
		}
		cfg := cloudFile(s, []string{app.ComponentIngest}, metricsB, s.apiAddr)
		ingestExternal(s, cfg)
		i, err := proc("ingest", cfg)
		if err != nil {
			return err
		}
		s.brokerProc, s.ingestProc, s.apiProc, s.ingestMetrics = b, i, b, metricsB
	}
	return nil
}

func (s *Stand) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

func (s *Stand) templates() string { return s.tmplDir }

// maxPowerKW is the plausible maximum power P of a device's counter as the
// drill's org.yaml gives it: the template's energy.max_power_kw times the
// simulator's speed. The simulated clock runs speed times faster than the
// edge's time stamps, so the metered load looks that much larger, and the
// reports' plausibility rule must allow for it.
func (s *Stand) maxPowerKW(d simDevice) float64 {
	t := s.opts.templates[d.Template]
	if t == nil || t.Energy == nil || t.Energy.MaxPowerKW <= 0 {
		return 0
	}
	return t.Energy.MaxPowerKW * max(s.speed, 1)
}

// Start runs the cloud, the building and the edge agent, and waits until
// readings reach the database.
func (s *Stand) Start(ctx context.Context) error {
	if s.mosq != nil {
		if err := s.startCloud(ctx, s.mosq); err != nil {
			return err
		}
	}
	for _, p := range s.cloudProcs {
		if s.spec.lateIngest && s.metricsOf[p] != "" {
			continue
		}
		if err := s.startCloud(ctx, p); err != nil {
			return err
		}
	}
	if err := s.devsim.Start(); err != nil {
		return err
	}
	if err := s.await(ctx, "the simulated building to answer", 30*time.Second, s.devsim, func() (bool, error) {
		return s.getOK(ctx, "http://"+s.control+"/devices"), nil
	}); err != nil {
		return err
	}
	if err := s.startEdge(ctx); err != nil {
		return err
	}
	if s.spec.lateIngest {
		return nil
	}
	return s.awaitStored(ctx)
}

// awaitStored waits until readings reach the database.
func (s *Stand) awaitStored(ctx context.Context) error {
	return s.await(ctx, "the first readings in ClickHouse", 60*time.Second, s.edge, func() (bool, error) {
		n, err := s.storedReadings(ctx)
		return err == nil && n > 0, nil
	})
}

// startCloud starts one cloud process and waits for its metrics endpoint
// and, for the ingest, its broker connection.
func (s *Stand) startCloud(ctx context.Context, p *Process) error {
	if err := p.Start(); err != nil {
		return err
	}
	if p == s.brokerProc {
		if err := s.await(ctx, p.name+"'s broker to listen", 60*time.Second, p, func() (bool, error) {
			return dialOK(s.brokerAddr), nil
		}); err != nil {
			return err
		}
	}
	if addr := s.metricsOf[p]; addr != "" {
		return s.await(ctx, p.name+"'s ingest to connect", 60*time.Second, p, func() (bool, error) {
			m, err := scrape(ctx, addr)
			return err == nil && m.Sum(mIngestConnected) == 1, nil
		})
	}
	return nil
}

// startEdge starts the agent (again, on the same queue) and waits for its
// uplink.
func (s *Stand) startEdge(ctx context.Context) error {
	if err := s.edge.Start(); err != nil {
		return err
	}
	return s.await(ctx, "the edge agent's uplink", 60*time.Second, s.edge, func() (bool, error) {
		m, err := scrape(ctx, s.edgeHTTP)
		return err == nil && m.Sum(mEdgeConnected) == 1, nil
	})
}

// await polls check until it holds; it fails early when p exits.
func (s *Stand) await(ctx context.Context, what string, timeout time.Duration, p *Process, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
		if p != nil && !p.Running() {
			return false, fmt.Errorf("%s exited (%v); last lines of %s:\n%s", p.name, p.ExitErr(), p.logPath, p.LogTail(15))
		}
		return check()
	})
	if err != nil {
		return fmt.Errorf("cannot wait for %s: %w", what, err)
	}
	return nil
}

func (s *Stand) getOK(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (s *Stand) edgeMetrics(ctx context.Context) (*Metrics, error) { return scrape(ctx, s.edgeHTTP) }

func (s *Stand) cloudMetrics(ctx context.Context) (*Metrics, error) {
	return scrape(ctx, s.ingestMetrics)
}

// Close stops every process (edge first, cloud last), removes the
// database and, unless kept, the directory.
func (s *Stand) Close(ctx context.Context, keep bool) {
	var errs []error
	for _, p := range []*Process{s.edge, s.devsim} {
		if p != nil {
			errs = append(errs, p.Stop(15*time.Second))
		}
	}
	if s.uplink != nil {
		s.uplink.Close()
	}
	if s.ingestLink != nil {
		s.ingestLink.Close()
	}
	for i := len(s.cloudProcs) - 1; i >= 0; i-- {
		errs = append(errs, s.cloudProcs[i].Stop(20*time.Second))
	}
	if s.mosq != nil {
		errs = append(errs, s.mosq.Stop(10*time.Second))
	}
	if s.ch.proxy != nil {
		s.ch.proxy.Close()
	}
	if s.conn != nil {
		s.conn.Close()
	}
	if !keep && s.ch.database != "" && s.ch.server == nil {
		errs = append(errs, dropDatabase(ctx, s.ch))
	}
	if s.ch.server != nil {
		errs = append(errs, s.ch.server.Stop())
	}
	if err := errors.Join(errs...); err != nil {
		s.log.Warn("drill stand did not stop cleanly", "err", err)
	}
	if !keep {
		os.RemoveAll(s.dir)
	}
}
