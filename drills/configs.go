package main

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/app"
	"github.com/plantroom/plantroom/cloud/broker"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/nettest"
)

// The drill's organisation: one company, one project, one gateway.
const (
	drillCompany = "drillco"
	drillProject = "drillpark"
	drillGateway = "gw-drill-1"
	drillTZ      = "Asia/Shanghai"
	drillTariff  = "sh-general" // in configs/tariffs.yaml
	ingestUser   = "plantroom-ingest"
	// ingestClientID is the (first) ingest's MQTT client id.
	ingestClientID = ingestUser + "-drill"
	// drillCommitTimeout is the edge's uplink.commit_timeout in every drill.
	drillCommitTimeout = 2 * time.Second
)

// simDevice is one simulated device of the drill building, in the format
// of devices/README.md ("Building configuration").
type simDevice struct {
	ID           string             `yaml:"id"`
	Template     string             `yaml:"template"`
	Listen       string             `yaml:"listen"`
	UnitID       int                `yaml:"unit_id"`
	RatedKW      float64            `yaml:"rated_kw,omitempty"`
	BaseLoadKW   float64            `yaml:"base_load_kw,omitempty"`
	Pair         string             `yaml:"pair,omitempty"`
	SetpointBar  float64            `yaml:"setpoint_bar,omitempty"`
	Schedule     *simSchedule       `yaml:"schedule,omitempty"`
	FaultsPerDay *float64           `yaml:"faults_per_day,omitempty"`
	Initial      map[string]float64 `yaml:"initial,omitempty"`

	kind string // org.yaml kind
}

type simSchedule struct {
	On  string `yaml:"on"`
	Off string `yaml:"off"`
}

// simBuilding is bin/devsim's configuration.
type simBuilding struct {
	Building string      `yaml:"building"`
	TimeZone string      `yaml:"time_zone"`
	Seed     uint64      `yaml:"seed"`
	Clock    simClock    `yaml:"clock"`
	Tmpl     string      `yaml:"templates"`
	Control  string      `yaml:"control"`
	Devices  []simDevice `yaml:"devices"`
}

type simClock struct {
	Speed float64 `yaml:"speed"`
	Step  string  `yaml:"step"`
}

// edgeConfig is bin/edge-agent's configuration (edge/agent/config.go),
// only the fields a drill sets.
type edgeConfig struct {
	Gateway struct {
		ID       string `yaml:"id"`
		Company  string `yaml:"company"`
		Project  string `yaml:"project"`
		Password string `yaml:"password"`
	} `yaml:"gateway"`
	Templates string `yaml:"templates"`
	Uplink    struct {
		Broker           string  `yaml:"broker"`
		KeepAlive        string  `yaml:"keepalive"`
		ConnectTimeout   string  `yaml:"connect_timeout"`
		BatchMaxReadings int     `yaml:"batch_max_readings"`
		BatchMaxDelay    string  `yaml:"batch_max_delay"`
		BacklogRate      float64 `yaml:"backlog_rate,omitempty"`
		ReconnectMin     string  `yaml:"reconnect_min"`
		ReconnectMax     string  `yaml:"reconnect_max"`
		CommitTimeout    string  `yaml:"commit_timeout"`
		CommitTimeoutMax string  `yaml:"commit_timeout_max"`
	} `yaml:"uplink"`
	Queue struct {
		Path     string `yaml:"path"`
		MaxBytes int64  `yaml:"max_bytes,omitempty"`
	} `yaml:"queue"`
	HTTP struct {
		Listen string `yaml:"listen"`
	} `yaml:"http"`
	Modbus struct {
		OfflineAfter int    `yaml:"offline_after"`
		MaxBackoff   string `yaml:"max_backoff"`
	} `yaml:"modbus"`
	Report struct {
		Heartbeat string `yaml:"heartbeat"`
	} `yaml:"report"`
	Devices []edgeDevice `yaml:"devices"`
}

type edgeDevice struct {
	ID           string `yaml:"id"`
	Template     string `yaml:"template"`
	Address      string `yaml:"address"`
	UnitID       int    `yaml:"unit_id"`
	PollInterval string `yaml:"poll_interval"`
	Timeout      string `yaml:"timeout"`
}

// building returns the simulated devices of a drill: a small plant room
// (main meter, a duty/standby pump pair, an elevator, a lighting panel,
// polled every second), or for heavy, meters whose every value changes
// every poll so that the edge queue fills within seconds.
func building(heavy bool) (devs []simDevice, speed float64, poll time.Duration) {
	none := 0.0
	if heavy {
		for i := 1; i <= 8; i++ {
			devs = append(devs, simDevice{ID: fmt.Sprintf("drill-meter-%d", i), Template: "sdm630", kind: "meter",
				BaseLoadKW: 30 + float64(i), Initial: map[string]float64{"energy_import_kwh": 1000, "energy_total_kwh": 1000}})
		}
		return devs, 10, 100 * time.Millisecond
	}
	devs = []simDevice{
		{ID: "drill-meter-main", Template: "sdm630", kind: "meter", BaseLoadKW: 20,
			Initial: map[string]float64{"energy_import_kwh": 1000, "energy_total_kwh": 1000}},
		{ID: "drill-pump-1", Template: "pump-vfd", kind: "pump", RatedKW: 7.5, Pair: "drill-pump-2", SetpointBar: 3, FaultsPerDay: &none,
			Initial: map[string]float64{"energy_kwh": 500, "run_hours": 100}},
		{ID: "drill-pump-2", Template: "pump-vfd", kind: "pump", RatedKW: 7.5, FaultsPerDay: &none,
			Initial: map[string]float64{"energy_kwh": 400, "run_hours": 90}},
		{ID: "drill-elevator-1", Template: "elevator", kind: "elevator", RatedKW: 11, FaultsPerDay: &none,
			Initial: map[string]float64{"energy_kwh": 300, "trips": 1000}},
		{ID: "drill-lighting-1", Template: "lighting-panel", kind: "lighting", RatedKW: 6,
			Schedule: &simSchedule{On: "00:00", Off: "00:00"}, Initial: map[string]float64{"energy_kwh": 200}},
	}
	return devs, 1, time.Second
}

// freePort returns a loopback address with a port free at this moment.
func freePort() (string, error) { return nettest.PickAddr() }

func freePorts(n int) ([]string, error) { return nettest.PickAddrs(n) }

func randomSecret() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

func writeYAML(path string, v any) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode %q: %w", path, err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("cannot write %q: %w", path, err)
	}
	return nil
}

// orgFile is the drill's org.yaml: its gateway with a bcrypt hash made now
// and one HQ admin whose token the drill uses for the API.
func orgFile(devs []simDevice, poll time.Duration, maxPowerKW func(simDevice) float64, gwHash, tokenHash string) *config.Org {
	gw := config.Gateway{ID: drillGateway, Name: "drill plant room", PasswordHash: gwHash}
	for _, d := range devs {
		gw.Devices = append(gw.Devices, config.Device{ID: d.ID, Name: d.ID, Kind: d.kind, Template: d.Template,
			Address: "tcp://" + d.Listen, UnitID: 1, PollInterval: config.D(poll), MaxPowerKW: maxPowerKW(d)})
	}
	return &config.Org{
		Companies: []config.Company{{ID: drillCompany, Name: "Drill Property Co", Projects: []config.Project{{
			ID: drillProject, Name: "Drill Park", TimeZone: drillTZ, FloorAreaM2: 10000, Tariff: drillTariff,
			Gateways: []config.Gateway{gw},
		}}}},
		Staff: []config.Staff{{ID: "drill-admin", Name: "Drill Admin", Company: drillCompany, Role: "hq_admin", TokenHash: tokenHash}},
	}
}

// cloudFile is one cloud process's configuration.
func cloudFile(s *Stand, components []string, metrics, apiAddr string) *app.Config {
	c := &app.Config{
		Org: s.path("org.yaml"), Tariffs: filepath.Join(s.opts.configs, "tariffs.yaml"),
		Templates: s.templates(), Rules: filepath.Join(s.opts.configs, "rules.yaml"),
		Components: components,
		Log:        app.Log{Level: "info", Format: "text"},
		Metrics:    app.Metrics{Listen: metrics},
		ClickHouse: app.ClickHouse{Addr: s.ch.cloudAddr(), Database: s.ch.database, User: s.ch.user, Password: s.ch.password},
		API:        api.Config{Listen: apiAddr},
	}
	c.Ingest.FlushInterval = config.D(200 * time.Millisecond)
	if s.spec.ingestFlush > 0 {
		c.Ingest.FlushInterval = config.D(s.spec.ingestFlush)
	}
	hasBroker := false
	for _, comp := range components {
		hasBroker = hasBroker || comp == app.ComponentBroker
	}
	if hasBroker {
		c.Broker.Listen = s.brokerAddr
		if !s.spec.noStore {
			c.Broker.StorePath = s.path("broker.db")
		}
		c.Broker.Services = []broker.Service{{Username: ingestUser, PasswordHash: s.ingestHash, Enabled: true, Subscribe: broker.DefaultServiceSubscribe, Publish: broker.IngestPublish}}
	}
	return c
}

// ingestExternal points a process without the embedded broker at the
// broker process.
func ingestExternal(s *Stand, c *app.Config) {
	c.Broker.Listen = ""
	c.Broker.Services = nil
	c.Broker.StorePath = ""
	addr := s.brokerAddr
	if s.ingestLink != nil {
		addr = s.ingestLink.Addr()
	}
	c.Broker.External = app.External{URL: "tcp://" + addr, Username: ingestUser, Password: s.ingestSecret}
	c.Ingest.ClientID = ingestClientID
}

// edgeFile is the agent's configuration: the uplink goes through the
// drill's link, the queue lives in the drill directory.
func edgeFile(s *Stand) *edgeConfig {
	e := &edgeConfig{}
	e.Gateway.ID, e.Gateway.Company, e.Gateway.Project, e.Gateway.Password = drillGateway, drillCompany, drillProject, s.gwSecret
	e.Templates = s.templates()
	u := &e.Uplink
	u.Broker = "tcp://" + s.uplink.Addr()
	u.KeepAlive, u.ConnectTimeout = "5s", "2s"
	u.BatchMaxReadings, u.BatchMaxDelay = 200, "500ms"
	if s.spec.batchMax > 0 {
		u.BatchMaxReadings = s.spec.batchMax
	}
	u.BacklogRate = s.spec.backlogRate
	u.ReconnectMin, u.ReconnectMax = "200ms", "2s"
	// A batch lost behind the broker's PUBACK comes again within seconds,
	// so that every drill ends in well under a minute.
	ct := cmp.Or(s.spec.commitTimeout, drillCommitTimeout)
	u.CommitTimeout, u.CommitTimeoutMax = ct.String(), max(8*time.Second, 2*ct).String()
	e.Queue.Path = s.path("edge", "queue.db")
	e.Queue.MaxBytes = s.spec.queueBytes
	e.HTTP.Listen = s.edgeHTTP
	e.Modbus.OfflineAfter, e.Modbus.MaxBackoff = 3, "1s"
	e.Report.Heartbeat = "10s"
	if s.spec.heavy {
		e.Report.Heartbeat = "1s"
	}
	for _, d := range s.devices {
		e.Devices = append(e.Devices, edgeDevice{ID: d.ID, Template: d.Template, Address: "tcp://" + d.Listen, UnitID: 1,
			PollInterval: s.poll.String(), Timeout: "500ms"})
	}
	return e
}

var deadbandRE = regexp.MustCompile(`,\s*deadband:\s*[0-9.eE+-]+`)

// copyTemplates copies the shipped templates without their deadbands.
func copyTemplates(src, dst string) error {
	files, err := filepath.Glob(filepath.Join(src, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("cannot find templates in %q: %v", src, err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("cannot create %q: %w", dst, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("cannot read template: %w", err)
		}
		out := deadbandRE.ReplaceAll(data, nil)
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), out, 0o644); err != nil {
			return fmt.Errorf("cannot write template: %w", err)
		}
	}
	return nil
}
