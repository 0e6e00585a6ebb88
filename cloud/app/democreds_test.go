package app

import (
	"strings"
	"testing"

	"github.com/plantroom/plantroom/config"
)

// The demo configuration's published credentials are harmless on loopback
// and named loudly on any other listener; the ingest service account of
// configs/cloud.yaml is off unless enabled.
func TestDemoCredentialWarnings(t *testing.T) {
	cfg, err := Load("../../configs/cloud.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := config.LoadBundle(cfg.Org, cfg.Tariffs, cfg.Templates, cfg.Rules)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Broker.Services) == 0 || len(cfg.Broker.EnabledServices()) != 0 {
		t.Errorf("configs/cloud.yaml: services %d, enabled %d: the unused ingest account must be off", len(cfg.Broker.Services), len(cfg.Broker.EnabledServices()))
	}
	if w := DemoCredentialWarnings(cfg, b); len(w) != 0 {
		t.Errorf("loopback listeners warn: %q", w)
	}
	cfg.Broker.Listen = "0.0.0.0:1883"
	cfg.API.Listen = ":8080"
	cfg.Broker.Services[0].Enabled = true
	w := strings.Join(DemoCredentialWarnings(cfg, b), "\n")
	for _, want := range []string{
		`gateway "gw-garden-1" has the demo password from README.md and the broker listens on 0.0.0.0:1883`,
		`gateway "gw-tower-1" has the demo password`,
		`broker service "plantroom-ingest" has the demo password from configs/cloud.yaml`,
		`staff "hq-admin" has the demo API token from README.md and the API listens on :8080`,
		`staff "tech-tower-1" has the demo API token`,
	} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
	for _, l := range []string{"127.0.0.1:1883", "[::1]:1883", "localhost:8080"} {
		if !isLoopback(l) {
			t.Errorf("%s is loopback", l)
		}
	}
	for _, l := range []string{"0.0.0.0:1883", ":1883", "10.0.0.5:1883", "[::]:1883", "nonsense"} {
		if isLoopback(l) {
			t.Errorf("%s is not loopback", l)
		}
	}
}
