package mqttin

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/plantroom/plantroom/config"
)

// Defaults for zero configuration fields.
const (
	DefaultListen               = "127.0.0.1:1884"
	DefaultMaxReconnectInterval = 30 * time.Second
)

// Limits of the MQTT input.
const (
	// MaxPayload is the largest device message accepted; the embedded
	// broker refuses larger packets outright.
	MaxPayload = 64 << 10
	// MaxClients is the most connections the embedded broker accepts.
	MaxClients = 512
)

// Config is the MQTT device input: exactly one of Embedded (the agent runs
// the plant-room broker) or External (the agent subscribes to a site broker).
type Config struct {
	Embedded *Embedded `yaml:"embedded"`
	External *External `yaml:"external"`
}

// Embedded is a broker the agent runs for the devices on the plant-room LAN.
// Only the listed users may connect; anonymous clients are refused.
type Embedded struct {
	// Listen is the TCP address devices connect to [127.0.0.1:1884]; use the
	// LAN address (or ":1884") for devices on the plant-room network.
	Listen string `yaml:"listen"`
	Users  []User `yaml:"users"`
}

// User is a device login of the embedded broker, with either a password or
// its hash.
type User struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// PasswordHash is bcrypt ("$2a$…", from `bin/cloud hash-password`) or
	// "sha256:<hex>".
	PasswordHash string `yaml:"password_hash"`
}

// External is an existing site broker the agent subscribes to.
type External struct {
	// URL is tcp://host:port (also mqtt://); ssl://, tls:// or mqtts:// for TLS.
	URL      string `yaml:"url"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// ClientID [plantroom-edge-<random>]: the session is clean, so a fresh id
	// per start is safe; set one to recognise the agent in the broker's logs.
	ClientID string `yaml:"client_id"`
	TLS      *TLS   `yaml:"tls"`
	// MaxReconnectInterval caps the reconnect backoff [30s].
	MaxReconnectInterval config.Duration `yaml:"max_reconnect_interval"`
}

// TLS configures the connection to an external broker. Without CAFile the
// system roots verify the broker; CertFile and KeyFile give a client
// certificate.
type TLS struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"` // default: the URL's host
}

// setDefaults fills zero fields; the one place defaults are applied.
func (c *Config) setDefaults() {
	if e := c.Embedded; e != nil && e.Listen == "" {
		e.Listen = DefaultListen
	}
	if x := c.External; x != nil && x.MaxReconnectInterval.Duration == 0 {
		x.MaxReconnectInterval = config.D(DefaultMaxReconnectInterval)
	}
}

// Validate checks the configuration on its own (paths from its root) and
// applies defaults.
func (c *Config) Validate(p *config.Problems) { c.ValidateAt(p, "") }

// ValidateAt checks the configuration as the section at path of a larger
// file ("mqtt" gives "mqtt.embedded.listen: …") and applies defaults.
func (c *Config) ValidateAt(p *config.Problems, path string) {
	c.setDefaults()
	switch {
	case c.Embedded == nil && c.External == nil:
		p.Addf(config.Join(path, "embedded"), "one of embedded or external is required")
	case c.Embedded != nil && c.External != nil:
		p.Addf(config.Join(path, "external"), "embedded and external exclude each other")
	}
	if e := c.Embedded; e != nil {
		e.validate(p, config.Join(path, "embedded"))
	}
	if x := c.External; x != nil {
		x.validate(p, config.Join(path, "external"))
	}
}

func (e *Embedded) validate(p *config.Problems, path string) {
	checkListen(p, config.Join(path, "listen"), e.Listen)
	if len(e.Users) == 0 {
		p.Addf(config.Join(path, "users"), "at least one user is required (anonymous devices are refused)")
	}
	names := map[string]bool{}
	for i, u := range e.Users {
		up := config.Join(config.Join(path, "users"), i)
		switch {
		case u.Username == "":
			p.Addf(config.Join(up, "username"), "required")
		case names[u.Username]:
			p.Addf(config.Join(up, "username"), "duplicate user %q", u.Username)
		}
		names[u.Username] = true
		switch {
		case u.Password == "" && u.PasswordHash == "":
			p.Addf(config.Join(up, "password"), "one of password or password_hash is required")
		case u.Password != "" && u.PasswordHash != "":
			p.Addf(config.Join(up, "password_hash"), "password and password_hash exclude each other")
		case u.PasswordHash != "":
			if msg := hashProblem(u.PasswordHash); msg != "" {
				p.Addf(config.Join(up, "password_hash"), "%s", msg)
			}
		}
	}
}

func checkListen(p *config.Problems, path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.Addf(path, "must be host:port, got %q", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.Addf(path, "invalid port in %q", addr)
	}
}

// hashProblem explains what is wrong with a password hash, or returns "".
func hashProblem(h string) string {
	switch {
	case strings.HasPrefix(h, "$2"):
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return fmt.Sprintf("not a valid bcrypt hash: %v", err)
		}
		return ""
	case strings.HasPrefix(h, "sha256:"):
		if b, err := hex.DecodeString(strings.TrimPrefix(h, "sha256:")); err != nil || len(b) != 32 {
			return "a sha256 hash must be \"sha256:\" and 64 hex digits"
		}
		return ""
	}
	return "must be a bcrypt hash (\"$2a$…\", from `bin/cloud hash-password`) or \"sha256:<hex>\""
}

// tlsSchemes are the URL schemes of a TLS connection.
var tlsSchemes = map[string]bool{"ssl": true, "tls": true, "mqtts": true}

func (x *External) validate(p *config.Problems, path string) {
	up := config.Join(path, "url")
	u, err := url.Parse(x.URL)
	switch {
	case x.URL == "":
		p.Addf(up, "required (tcp://host:port)")
	case err != nil:
		p.Addf(up, "invalid URL %q", x.URL)
	case u.Scheme != "tcp" && u.Scheme != "mqtt" && !tlsSchemes[u.Scheme]:
		p.Addf(up, "unsupported scheme in %q (want tcp, mqtt, ssl, tls or mqtts)", x.URL)
	case u.Hostname() == "" || u.Port() == "":
		p.Addf(up, "must name a host and a port, got %q", x.URL)
	case u.Path != "" && u.Path != "/":
		p.Addf(up, "must not have a path, got %q", x.URL)
	}
	if x.Password != "" && x.Username == "" {
		p.Addf(config.Join(path, "username"), "required with a password")
	}
	if len(x.ClientID) > 64 || strings.ContainsAny(x.ClientID, "+#/ \x00") {
		p.Addf(config.Join(path, "client_id"), "must be at most 64 characters without + # / or spaces, got %q", x.ClientID)
	}
	if x.TLS != nil {
		tp := config.Join(path, "tls")
		if err == nil && x.URL != "" && !tlsSchemes[u.Scheme] {
			p.Addf(tp, "set, but %q is not a TLS URL (use ssl://, tls:// or mqtts://)", x.URL)
		}
		if (x.TLS.CertFile == "") != (x.TLS.KeyFile == "") {
			p.Addf(config.Join(tp, "key_file"), "cert_file and key_file go together")
		}
	}
	if d := x.MaxReconnectInterval.Duration; d < 100*time.Millisecond {
		p.Addf(config.Join(path, "max_reconnect_interval"), "must be at least 100ms, got %s", x.MaxReconnectInterval)
	}
}
