package photo

import "github.com/plantroom/plantroom/config"

// Config is the photos section of cloud.yaml.
type Config struct {
	// Dir is the local directory photos are kept in (Dir store); relative
	// to the configuration file. Default DefaultDir.
	Dir string `yaml:"dir"`
	// MaxBytes is the largest upload accepted. Default DefaultMaxBytes.
	MaxBytes int64 `yaml:"max_bytes"`
}

// DefaultDir is where photos are kept unless photos.dir says otherwise:
// the cloud's data directory, beside the configuration file.
const DefaultDir = ".data/photos"

// Validate fills in defaults and reports every problem under path.
func (c *Config) Validate(p *config.Problems, path string) {
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	switch {
	case c.MaxBytes == 0:
		c.MaxBytes = DefaultMaxBytes
	case c.MaxBytes < 1024:
		p.Addf(config.Join(path, "max_bytes"), "must be at least 1024 bytes, got %d", c.MaxBytes)
	case c.MaxBytes > 100<<20:
		p.Addf(config.Join(path, "max_bytes"), "must be at most %d bytes (100 MiB), got %d", 100<<20, c.MaxBytes)
	}
}
