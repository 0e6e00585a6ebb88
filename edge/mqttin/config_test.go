package mqttin

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantroom/plantroom/config"
)

// problems decodes YAML into a Config and returns its problems.
func problems(t *testing.T, doc string) []string {
	t.Helper()
	var c Config
	err := config.Decode([]byte(doc), &c)
	if err == nil {
		return nil
	}
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("decode %q: %v", doc, err)
	}
	return ve.Problems
}

func checkProblems(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestConfigValid(t *testing.T) {
	var c Config
	err := config.Decode([]byte(`
embedded:
  users:
    - {username: devsim, password: devsim-demo}
    - {username: shelly, password_hash: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Embedded.Listen != DefaultListen {
		t.Errorf("listen %q, want the default %q", c.Embedded.Listen, DefaultListen)
	}
	c = Config{}
	err = config.Decode([]byte("external: {url: \"mqtts://site-broker.lan:8883\", username: edge, password: x, tls: {ca_file: /etc/ssl/site.pem}}"), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.External.MaxReconnectInterval.Duration != DefaultMaxReconnectInterval {
		t.Errorf("max_reconnect_interval %s, want the default", c.External.MaxReconnectInterval)
	}
	if err := config.Decode([]byte("embedded: {listen: \"127.0.0.1:1884\", user: []}"), &c); err == nil || !strings.Contains(err.Error(), "field user not found") {
		t.Errorf("unknown field: %v", err)
	}
}

func TestConfigProblems(t *testing.T) {
	checkProblems(t, problems(t, "{}"), "embedded: one of embedded or external is required")
	checkProblems(t, problems(t, `
embedded: {users: [{username: a, password: b}]}
external: {url: "tcp://127.0.0.1:1883"}`),
		"external: embedded and external exclude each other")
	checkProblems(t, problems(t, `
embedded:
  listen: "1884"
  users:
    - {username: "", password: x}
    - {username: a}
    - {username: a, password: x, password_hash: "$2a$10$abc"}
    - {username: b, password_hash: "md5:abc"}
    - {username: c, password_hash: "sha256:abc"}
    - {username: d, password_hash: "$2a$10$tooshort"}`),
		`embedded.listen: must be host:port, got "1884"`,
		"embedded.users[0].username: required",
		"embedded.users[1].password: one of password or password_hash is required",
		`embedded.users[2].username: duplicate user "a"`,
		"embedded.users[2].password_hash: password and password_hash exclude each other",
		"embedded.users[3].password_hash: must be a bcrypt hash (\"$2a$…\", from `bin/cloud hash-password`) or \"sha256:<hex>\"",
		`embedded.users[4].password_hash: a sha256 hash must be "sha256:" and 64 hex digits`,
		"embedded.users[5].password_hash: not a valid bcrypt hash: crypto/bcrypt: hashedSecret too short to be a bcrypted password")
	checkProblems(t, problems(t, "embedded: {listen: \"127.0.0.1:99999\"}"),
		`embedded.listen: invalid port in "127.0.0.1:99999"`,
		"embedded.users: at least one user is required (anonymous devices are refused)")
	checkProblems(t, problems(t, `
external:
  url: "http://broker:80"
  password: x
  client_id: "edge/1"
  tls: {cert_file: c.pem}
  max_reconnect_interval: 10ms`),
		`external.url: unsupported scheme in "http://broker:80" (want tcp, mqtt, ssl, tls or mqtts)`,
		"external.username: required with a password",
		`external.client_id: must be at most 64 characters without + # / or spaces, got "edge/1"`,
		`external.tls: set, but "http://broker:80" is not a TLS URL (use ssl://, tls:// or mqtts://)`,
		"external.tls.key_file: cert_file and key_file go together",
		"external.max_reconnect_interval: must be at least 100ms, got 10ms")
	checkProblems(t, problems(t, "external: {url: \"tcp://broker\"}"), `external.url: must name a host and a port, got "tcp://broker"`)
	checkProblems(t, problems(t, "external: {}"), "external.url: required (tcp://host:port)")

	// As a section of a larger file.
	var p config.Problems
	(&Config{Embedded: &Embedded{Listen: "x"}}).ValidateAt(&p, "mqtt")
	checkProblems(t, p.Err().(*config.ValidationError).Problems,
		`mqtt.embedded.listen: must be host:port, got "x"`,
		"mqtt.embedded.users: at least one user is required (anonymous devices are refused)")
}

// New reports configuration, device and option problems together and
// leaves the caller's configuration as it was.
func TestNewProblems(t *testing.T) {
	cfg := Config{Embedded: &Embedded{Users: []User{{Username: "a"}}}}
	_, err := New(cfg, []Device{{ID: "x", Topic: "t"}}, Options{})
	if err == nil {
		t.Fatal("New accepted a broken configuration")
	}
	for _, want := range []string{
		"cannot configure MQTT device input",
		"embedded.users[0].password: one of password or password_hash is required",
		"devices[0].template: required",
		"options.sink: required",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if cfg.Embedded.Listen != "" {
		t.Errorf("New changed the caller's listen address to %q", cfg.Embedded.Listen)
	}
	ext := Config{External: &External{URL: "tcp://127.0.0.1:1"}}
	if _, err := New(ext, demoDevices(t), Options{Sink: (&collector{}).sink, Log: discard}); err != nil {
		t.Errorf("New without optional options: %v", err)
	}
	if ext.External.MaxReconnectInterval.Duration != 0 || ext.External.ClientID != "" {
		t.Errorf("New changed the caller's external section: %+v", ext.External)
	}
	// A second input on the same registry is an error, not a panic.
	reg := prometheus.NewRegistry()
	opts := Options{Sink: (&collector{}).sink, Log: discard, Registerer: reg}
	if _, err := New(ext, demoDevices(t), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ext, demoDevices(t), opts); err == nil || !strings.Contains(err.Error(), "cannot register MQTT input metrics") {
		t.Errorf("second registration: %v", err)
	}
}
