package api

import (
	"net"
	"time"

	"github.com/plantroom/plantroom/config"
)

// Config is the API server's configuration (the "api" section of the
// cloud's configuration file).
type Config struct {
	// Listen is the TCP address: "127.0.0.1:8080", ":8080"; port 0 picks one.
	Listen            string          `yaml:"listen"`
	ReadHeaderTimeout config.Duration `yaml:"read_header_timeout"` // default 10s
	ReadTimeout       config.Duration `yaml:"read_timeout"`        // whole request incl. body; default 30s
	WriteTimeout      config.Duration `yaml:"write_timeout"`       // default 60s; streams are exempt
	IdleTimeout       config.Duration `yaml:"idle_timeout"`        // keep-alive; default 2m
	// RequestTimeout bounds a handler's work, storage queries included;
	// default 30s.
	RequestTimeout  config.Duration `yaml:"request_timeout"`
	ShutdownTimeout config.Duration `yaml:"shutdown_timeout"` // default 10s
	// BodyLimit is the largest request body in bytes; default 1 MiB.
	BodyLimit int64 `yaml:"body_limit"`
}

// Defaults of Config.
const (
	DefaultListen = "127.0.0.1:8080"
	DefaultBody   = 1 << 20
)

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	def := func(d *config.Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.ReadTimeout, 30*time.Second)
	def(&c.WriteTimeout, 60*time.Second)
	def(&c.IdleTimeout, 2*time.Minute)
	def(&c.RequestTimeout, 30*time.Second)
	def(&c.ShutdownTimeout, 10*time.Second)
	if c.BodyLimit == 0 {
		c.BodyLimit = DefaultBody
	}
	return c
}

// Validate reports every problem of c (after defaults) under path.
func (c Config) Validate(p *config.Problems, path string) {
	c = c.withDefaults()
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		p.Addf(config.Join(path, "listen"), "invalid address %q (want host:port)", c.Listen)
	}
	for _, d := range []struct {
		name string
		v    config.Duration
	}{
		{"read_header_timeout", c.ReadHeaderTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout},
		{"idle_timeout", c.IdleTimeout}, {"request_timeout", c.RequestTimeout}, {"shutdown_timeout", c.ShutdownTimeout},
	} {
		if d.v.Duration < 0 {
			p.Addf(config.Join(path, d.name), "must be > 0, got %s", d.v)
		}
	}
	if c.RequestTimeout.Duration > c.WriteTimeout.Duration {
		p.Addf(config.Join(path, "request_timeout"), "%s is longer than write_timeout %s: answers would be cut off", c.RequestTimeout, c.WriteTimeout)
	}
	if c.BodyLimit < 0 {
		p.Addf(config.Join(path, "body_limit"), "must be > 0 bytes, got %d", c.BodyLimit)
	}
}
