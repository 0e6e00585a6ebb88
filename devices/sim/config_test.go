package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/plantroom/plantroom/config"
)

// TestDemoBuildingsMatchOrg checks configs/building-*.yaml against the
// gateways of configs/org.yaml: same device ids, templates, ports and topics.
func TestDemoBuildingsMatchOrg(t *testing.T) {
	root := filepath.Join("..", "..", "configs")
	var org config.Org
	if err := config.LoadFile(filepath.Join(root, "org.yaml"), &org); err != nil {
		t.Fatal(err)
	}
	for file, gateway := range map[string]string{"building-garden.yaml": "gw-garden-1", "building-tower.yaml": "gw-tower-1"} {
		cfg, err := LoadConfig(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		ts, err := config.LoadTemplates(cfg.Templates)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := New(cfg, ts, nil); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		gw, ok := org.FindGateway(gateway)
		if !ok {
			t.Fatalf("org.yaml has no gateway %q", gateway)
		}
		sim := map[string]DeviceConfig{}
		for _, d := range cfg.Devices {
			sim[d.ID] = d
		}
		for _, d := range gw.Gateway.Devices {
			s, ok := sim[d.ID]
			if !ok {
				t.Errorf("%s lacks %s's device %q", file, gateway, d.ID)
				continue
			}
			delete(sim, d.ID)
			addr := "tcp://" + s.Listen
			if s.Topic != "" {
				addr = "mqtt:" + s.Topic
			}
			if s.Template != d.Template || addr != d.Address || s.UnitID != d.UnitID && d.UnitID != 0 {
				t.Errorf("%s: %s is %s at %s unit %d; org.yaml says %s at %s unit %d",
					file, d.ID, s.Template, addr, s.UnitID, d.Template, d.Address, d.UnitID)
			}
		}
		for id := range sim {
			t.Errorf("%s simulates %q, which %s does not have", file, id, gateway)
		}
		// The simulated MQTT devices publish to the local broker of the
		// building's own edge box, or its devices never report.
		var edge struct {
			MQTT struct {
				Embedded struct {
					Listen string `yaml:"listen"`
				} `yaml:"embedded"`
			} `yaml:"mqtt"`
		}
		data, err := os.ReadFile(filepath.Join(root, "edge-"+gateway+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &edge); err != nil {
			t.Fatal(err)
		}
		if want := "tcp://" + edge.MQTT.Embedded.Listen; cfg.MQTT.Broker != want {
			t.Errorf("%s: mqtt.broker is %s; the broker of %s's edge box is %s", file, cfg.MQTT.Broker, gateway, want)
		}
	}
}

func TestConfigProblems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(`
time_zone: Mars/Olympus
clock: {speed: -2, step: 5m}
control: 10.0.0.1:80
mqtt: {broker: "ssl://x:1"}
devices:
  - {id: m1, template: sdm630, listen: "127.0.0.1:15101", transport: serial, unit_id: 300}
  - {id: m1, template: sdm630, listen: "nowhere"}
  - {id: "bad id", template: pump-vfd, listen: "127.0.0.1:0", pair: ghost, floors: [5, 1], setpoint_bar: 40,
     schedule: {on: "25:00", off: "7"}, fault: {exception: 12}}
`), 0o644)
	_, err := LoadConfig(path)
	if err == nil {
		t.Fatal("a broken configuration loaded")
	}
	for _, want := range []string{
		"time_zone", "clock.speed", "clock.step", "control", "mqtt.broker",
		"devices[0].transport", "devices[0].unit_id", "devices[1].id: duplicate", "devices[1].listen",
		"devices[2].id", "devices[2].pair", "devices[2].floors", "devices[2].setpoint_bar",
		"devices[2].schedule.on", "devices[2].schedule.off", "devices[2].fault.exception",
	} {
		if !strings.Contains(err.Error(), want+":") && !strings.Contains(err.Error(), want+" ") {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing file loaded")
	}
	os.WriteFile(path, []byte("devices: []\nsurprise: 1\n"), 0o644)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Errorf("unknown field: %v", err)
	}
}

func TestTemplateProblems(t *testing.T) {
	ts := loadTemplates(t)
	cfg := &Config{Devices: []DeviceConfig{
		{ID: "a", Template: "nope", Listen: "127.0.0.1:0"},
		{ID: "b", Template: "sdm630"},
		{ID: "c", Template: "tasmota-plug", Listen: "127.0.0.1:0", Fault: &Fault{Delay: 1}},
		{ID: "d", Template: "elevator", Listen: "127.0.0.1:0", BaseLoadKW: 3, Pair: "e", Initial: map[string]float64{"floor": 3}},
		{ID: "e", Template: "sdm630", Listen: "127.0.0.1:0", Loads: []string{"e"}},
	}}
	_, err := New(cfg, ts, nil)
	if err == nil {
		t.Fatal("New accepted a configuration that does not fit its templates")
	}
	for _, want := range []string{
		`devices[0].template: unknown template "nope"`, "devices[1].listen: required", "devices[2].topic: required",
		"devices[2].listen: not used", "devices[2].fault", "devices[3].base_load_kw: not used", "devices[3].pair: not used",
		`devices[3].pair: "e" is not a pump`, `devices[3].initial.floor`, `devices[4].loads[0]: "e" is a meter`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
}
