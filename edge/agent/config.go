package agent

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/edge/modbus"
	"github.com/plantroom/plantroom/edge/mqttin"
	"github.com/plantroom/plantroom/edge/queue"
	"github.com/plantroom/plantroom/edge/report"
	"github.com/plantroom/plantroom/edge/uplink"
	"github.com/plantroom/plantroom/protocol"
)

// Defaults applied by Validate.
const (
	DefaultTemplates  = "configs/templates"
	DefaultHTTPListen = "127.0.0.1:9102"
)

// Config is the edge agent's configuration file (configs/edge-<gateway>.yaml).
// Relative paths are relative to the agent's working directory.
type Config struct {
	Gateway   GatewayConfig  `yaml:"gateway"`
	Templates string         `yaml:"templates"`
	Uplink    UplinkConfig   `yaml:"uplink"`
	Queue     QueueConfig    `yaml:"queue"`
	HTTP      HTTPConfig     `yaml:"http"`
	MQTT      *mqttin.Config `yaml:"mqtt"`
	Modbus    ModbusConfig   `yaml:"modbus"`
	Report    ReportConfig   `yaml:"report"`
	Devices   []DeviceConfig `yaml:"devices"`

	// Now stamps the readings taken (Modbus polls and MQTT messages); nil:
	// time.Now. Not part of the file: for a simulated plant room whose
	// devices run on a simulated clock.
	Now func() time.Time `yaml:"-"`
	// RelayWait bounds the wait for an MQTT relay's state report after a
	// command; 0: agent.RelayWait. Not part of the file (tests shorten it).
	RelayWait time.Duration `yaml:"-"`

	templates config.Templates // loaded by Validate
	devices   *deviceSet       // resolved by Validate
}

// GatewayConfig names the gateway as configs/org.yaml does and holds its
// broker secret.
type GatewayConfig struct {
	ID       string `yaml:"id"`
	Company  string `yaml:"company"`
	Project  string `yaml:"project"`
	Password string `yaml:"password"`
	// PasswordFile holds the password (trailing newline ignored); use it
	// instead of Password to keep the secret out of the configuration.
	PasswordFile string `yaml:"password_file"`
}

// Ref is the gateway's topic identity.
func (g GatewayConfig) Ref() protocol.GatewayRef {
	return protocol.GatewayRef{Company: g.Company, Project: g.Project, Gateway: g.ID}
}

// UplinkConfig is the connection to the cloud broker.
type UplinkConfig struct {
	Broker           string          `yaml:"broker"`
	TLS              TLSConfig       `yaml:"tls"`
	ClientID         string          `yaml:"client_id"`
	KeepAlive        config.Duration `yaml:"keepalive"`
	ConnectTimeout   config.Duration `yaml:"connect_timeout"`
	PublishTimeout   config.Duration `yaml:"publish_timeout"`
	InFlight         int             `yaml:"inflight"`
	BatchMaxReadings int             `yaml:"batch_max_readings"`
	BatchMaxDelay    config.Duration `yaml:"batch_max_delay"`
	BacklogRate      float64         `yaml:"backlog_rate"` // readings per second
	ReconnectMin     config.Duration `yaml:"reconnect_min"`
	ReconnectMax     config.Duration `yaml:"reconnect_max"`
	// CommitTimeout: a batch PUBACKed and not covered by a commit
	// acknowledgement within it is re-sent; each re-send of the same batch
	// waits twice as long, at most CommitTimeoutMax.
	CommitTimeout    config.Duration `yaml:"commit_timeout"`
	CommitTimeoutMax config.Duration `yaml:"commit_timeout_max"`
	// CommitDegradedAfter: /healthz says degraded when batches have waited
	// this long with no commit acknowledgement at all.
	CommitDegradedAfter config.Duration `yaml:"commit_degraded_after"`
}

// TLSConfig names PEM files for an ssl:// broker.
type TLSConfig struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// QueueConfig is the durable queue.
type QueueConfig struct {
	Path           string          `yaml:"path"`
	MaxBytes       ByteSize        `yaml:"max_bytes"`
	MinFree        ByteSize        `yaml:"min_free"`
	CommitInterval config.Duration `yaml:"commit_interval"`
}

// HTTPConfig is the local metrics and health endpoint.
type HTTPConfig struct {
	Listen string `yaml:"listen"`
}

// ModbusConfig holds settings for every Modbus device.
type ModbusConfig struct {
	GapFill      *int            `yaml:"gap_fill"` // unused registers read to save a request [16]
	OfflineAfter int             `yaml:"offline_after"`
	MaxBackoff   config.Duration `yaml:"max_backoff"`
}

// ReportConfig is report by exception.
type ReportConfig struct {
	Heartbeat config.Duration `yaml:"heartbeat"`
}

// DeviceConfig is one device the gateway reads. Address "mqtt:<topic>"
// makes it an MQTT device (its template must be an mqtt one); anything
// else is a Modbus address (see modbus.ParseAddress).
type DeviceConfig struct {
	ID               string          `yaml:"id"`
	Template         string          `yaml:"template"`
	Address          string          `yaml:"address"`
	UnitID           int             `yaml:"unit_id"`
	PollInterval     config.Duration `yaml:"poll_interval"`
	Timeout          config.Duration `yaml:"timeout"`
	Retries          int             `yaml:"retries"`
	SingleConnection bool            `yaml:"single_connection"`
}

// IsMQTT reports whether the device is read over MQTT.
func (d DeviceConfig) IsMQTT() bool { return strings.HasPrefix(d.Address, mqttin.AddressPrefix) }

// ByteSize is a size in bytes written as a number or with a unit: "256MiB",
// "1GiB", "500MB", "64KiB".
type ByteSize int64

// UnmarshalYAML parses a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	// A *yaml.TypeError lets decoding go on, so the other problems of the
	// file are reported with this one.
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: size must be a number or a string like \"256MiB\"", n.Line)}}
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*b = ByteSize(v)
	return nil
}

// ParseByteSize parses "268435456", "256MiB", "1GiB", "500MB", "64KiB".
func ParseByteSize(s string) (int64, error) {
	orig := s
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mul    int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mul = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mul
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v*float64(mul) > 1<<50 {
		return 0, fmt.Errorf("invalid size %q (want bytes, or a number with KiB, MiB, GiB, KB, MB or GB)", orig)
	}
	return int64(v * float64(mul)), nil
}

// Load reads and validates an agent configuration file. It checks the file
// on its own; New checks the devices against the templates.
func Load(path string) (*Config, error) {
	var c Config
	if err := config.LoadFile(path, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate records every problem with its path and applies defaults.
func (c *Config) Validate(p *config.Problems) {
	g := &c.Gateway
	if err := g.Ref().Validate(); err != nil {
		p.Add("gateway", err)
	}
	switch {
	case g.Password != "" && g.PasswordFile != "":
		p.Addf("gateway.password_file", "set password or password_file, not both")
	case g.PasswordFile != "":
		data, err := os.ReadFile(g.PasswordFile)
		if err != nil {
			p.Addf("gateway.password_file", "cannot read %q: %v", g.PasswordFile, err)
		} else {
			g.Password = strings.TrimRight(string(data), "\r\n")
		}
	}
	if g.Password == "" && g.PasswordFile == "" {
		p.Addf("gateway.password", "required (the gateway's broker secret), or password_file")
	}
	if c.Templates == "" {
		c.Templates = DefaultTemplates
	}
	c.validateUplink(p)
	if c.Queue.Path == "" {
		p.Addf("queue.path", "required (e.g. .data/edge/%s/queue.db)", g.ID)
	}
	if c.Queue.MaxBytes == 0 {
		c.Queue.MaxBytes = queue.DefaultMaxBytes
	} else if c.Queue.MaxBytes < queue.MinBoundBytes {
		p.Addf("queue.max_bytes", "must be at least 1MiB, got %d bytes", c.Queue.MaxBytes)
	}
	if c.Queue.MinFree == 0 {
		c.Queue.MinFree = queue.DefaultMinFreeBytes
	}
	if ci := c.Queue.CommitInterval.Duration; ci < 0 || ci > 10*time.Second {
		p.Addf("queue.commit_interval", "must be between 0 and 10s, got %s", ci)
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultHTTPListen
	} else if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		p.Addf("http.listen", "invalid address %q: %v", c.HTTP.Listen, err)
	}
	if c.MQTT != nil {
		c.MQTT.ValidateAt(p, "mqtt")
	}
	if c.Modbus.GapFill == nil {
		gap := modbus.DefaultMaxGap
		c.Modbus.GapFill = &gap
	} else if *c.Modbus.GapFill < 0 || *c.Modbus.GapFill > modbus.MaxRegisters {
		p.Addf("modbus.gap_fill", "must be 0–%d, got %d", modbus.MaxRegisters, *c.Modbus.GapFill)
	}
	if c.Modbus.OfflineAfter < 0 {
		p.Addf("modbus.offline_after", "must be >= 0, got %d", c.Modbus.OfflineAfter)
	}
	if c.Report.Heartbeat.Duration == 0 {
		c.Report.Heartbeat = config.D(report.DefaultHeartbeat)
	} else if c.Report.Heartbeat.Duration < time.Second {
		p.Addf("report.heartbeat", "must be at least 1s, got %s", c.Report.Heartbeat)
	}
	c.validateDevices(p)
	ts, err := config.LoadTemplates(c.Templates)
	if err != nil {
		p.Add("templates", err)
		return
	}
	c.templates = ts
	c.devices = buildDevices(p, c, ts)
}

func (c *Config) validateUplink(p *config.Problems) {
	u := &c.Uplink
	if u.Broker == "" {
		p.Addf("uplink.broker", "required, e.g. tcp://127.0.0.1:1883 or ssl://cloud.example.com:8883")
	} else if err := uplink.CheckBrokerURL(u.Broker); err != nil {
		p.Add("uplink.broker", err)
	}
	for _, f := range []struct{ path, file string }{{"uplink.tls.ca", u.TLS.CA}, {"uplink.tls.cert", u.TLS.Cert}, {"uplink.tls.key", u.TLS.Key}} {
		if f.file == "" {
			continue
		}
		if _, err := os.Stat(f.file); err != nil {
			p.Addf(f.path, "cannot read %q: %v", f.file, err)
		}
	}
	if (u.TLS.Cert == "") != (u.TLS.Key == "") {
		p.Addf("uplink.tls", "cert and key go together")
	}
	if (u.TLS != TLSConfig{}) && u.Broker != "" && !uplink.IsTLS(u.Broker) {
		p.Addf("uplink.tls", "set, but broker %q is not ssl://, tls:// or mqtts://", u.Broker)
	}
	if u.ClientID != "" && protocol.CheckID(u.ClientID) != nil {
		p.Add("uplink.client_id", protocol.CheckID(u.ClientID))
	}
	for _, d := range []struct {
		path string
		v    config.Duration
		min  time.Duration
	}{
		{"uplink.keepalive", u.KeepAlive, time.Second}, {"uplink.connect_timeout", u.ConnectTimeout, 100 * time.Millisecond},
		{"uplink.publish_timeout", u.PublishTimeout, time.Second}, {"uplink.batch_max_delay", u.BatchMaxDelay, time.Millisecond},
		{"uplink.reconnect_min", u.ReconnectMin, time.Millisecond}, {"uplink.reconnect_max", u.ReconnectMax, time.Millisecond},
		{"uplink.commit_timeout", u.CommitTimeout, 100 * time.Millisecond}, {"uplink.commit_timeout_max", u.CommitTimeoutMax, 100 * time.Millisecond},
		{"uplink.commit_degraded_after", u.CommitDegradedAfter, time.Second},
	} {
		if d.v.Duration != 0 && d.v.Duration < d.min {
			p.Addf(d.path, "must be at least %s, got %s", d.min, d.v)
		}
	}
	if u.InFlight != 0 && (u.InFlight < 2 || u.InFlight > 1000) {
		p.Addf("uplink.inflight", "must be 2–1000, got %d", u.InFlight)
	}
	if u.BatchMaxReadings < 0 || u.BatchMaxReadings > protocol.MaxBatchReadings {
		p.Addf("uplink.batch_max_readings", "must be 1–%d, got %d", protocol.MaxBatchReadings, u.BatchMaxReadings)
	}
	if u.BacklogRate < 0 {
		p.Addf("uplink.backlog_rate", "must be > 0 readings per second, got %v", u.BacklogRate)
	}
	if u.ReconnectMin.Duration > 0 && u.ReconnectMax.Duration > 0 && u.ReconnectMax.Duration < u.ReconnectMin.Duration {
		p.Addf("uplink.reconnect_max", "%s is below reconnect_min %s", u.ReconnectMax, u.ReconnectMin)
	}
	if u.CommitTimeout.Duration == 0 {
		u.CommitTimeout = config.D(uplink.DefaultCommitTimeout)
	}
	if u.CommitTimeoutMax.Duration == 0 {
		u.CommitTimeoutMax = config.D(max(uplink.DefaultCommitTimeoutMax, u.CommitTimeout.Duration))
	} else if u.CommitTimeoutMax.Duration < u.CommitTimeout.Duration {
		p.Addf("uplink.commit_timeout_max", "%s is below commit_timeout %s", u.CommitTimeoutMax, u.CommitTimeout)
	}
	if u.CommitDegradedAfter.Duration == 0 {
		u.CommitDegradedAfter = config.D(max(uplink.DefaultCommitDegraded, 2*u.CommitTimeout.Duration))
	} else if u.CommitDegradedAfter.Duration < u.CommitTimeout.Duration {
		p.Addf("uplink.commit_degraded_after", "%s is below commit_timeout %s: every batch would look overdue", u.CommitDegradedAfter, u.CommitTimeout)
	}
}

// validateDevices checks what can be checked without the templates: ids,
// duplicates, addresses and the Modbus-only fields of MQTT devices.
func (c *Config) validateDevices(p *config.Problems) {
	seen := map[string]int{}
	mqttDevices := false
	for i, d := range c.Devices {
		dp := config.Join("devices", i)
		if err := protocol.CheckID(d.ID); err != nil {
			p.Add(config.Join(dp, "id"), err)
		} else if j, dup := seen[d.ID]; dup {
			p.Addf(config.Join(dp, "id"), "duplicate device id %q (also devices[%d])", d.ID, j)
		}
		seen[d.ID] = i
		if d.Template == "" {
			p.Addf(config.Join(dp, "template"), "required")
		}
		if d.IsMQTT() {
			mqttDevices = true
			if strings.TrimPrefix(d.Address, mqttin.AddressPrefix) == "" {
				p.Addf(config.Join(dp, "address"), "an MQTT device's address is \"mqtt:<topic>\", got %q", d.Address)
			}
			if d.UnitID != 0 || d.Timeout.Duration != 0 || d.Retries != 0 || d.SingleConnection {
				p.Addf(dp, "unit_id, timeout, retries and single_connection are Modbus settings; device %q is read over MQTT", d.ID)
			}
			continue
		}
		if d.Address == "" {
			p.Addf(config.Join(dp, "address"), "required: tcp://host:port, rtuovertcp://host:port, rtu:///dev/ttyUSB0?baud=9600 or mqtt:<topic>")
		}
		if d.UnitID < 0 || d.UnitID > 255 {
			p.Addf(config.Join(dp, "unit_id"), "must be 0–255, got %d", d.UnitID)
		}
	}
	if mqttDevices && c.MQTT == nil {
		p.Addf("mqtt", "required: devices with mqtt: addresses need the embedded broker or a site broker")
	}
}

// QueueRoomNote says when the disk cannot hold queue.max_bytes beside
// queue.min_free, and so how much the queue will hold at most; "" when it
// can, or when the free space cannot be read. Not an error: the queue then
// bounds itself by what fits (edge/README.md).
func QueueRoomNote(c *Config) string {
	dir := filepath.Dir(c.Queue.Path)
	for { // the queue's directory may not exist before the first start
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	free, err := queue.FreeSpace(dir)
	if err != nil {
		return ""
	}
	var file int64
	if fi, err := os.Stat(c.Queue.Path); err == nil {
		file = fi.Size()
	}
	room := max(free-int64(c.Queue.MinFree)+file, queue.MinBoundBytes)
	if room >= int64(c.Queue.MaxBytes) {
		return ""
	}
	return fmt.Sprintf("queue.max_bytes (%s) does not fit on the disk of %s: %s free, %s kept free (queue.min_free); the queue will hold at most about %s",
		mib(int64(c.Queue.MaxBytes)), dir, mib(free), mib(int64(c.Queue.MinFree)), mib(room))
}

func mib(n int64) string { return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20)) }
