package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func loadDemo(t *testing.T) *Bundle {
	t.Helper()
	b, err := LoadBundle(demoOrg, demoTariffs, demoTemplates, demoRules)
	if err != nil {
		t.Fatalf("the demo configuration does not load: %v", err)
	}
	return b
}

func TestDemoBundleLoads(t *testing.T) {
	b := loadDemo(t)
	if n := len(b.Org.Companies); n != 1 {
		t.Fatalf("%d companies, want 1", n)
	}
	c := &b.Org.Companies[0]
	if len(c.Projects) != 2 || c.Projects[0].ID != "garden" || c.Projects[1].ID != "tower" {
		t.Fatalf("projects %+v, want garden and tower", c.Projects)
	}
	if n := len(b.Org.Devices()); n != 16 {
		t.Errorf("%d devices, want 16", n)
	}
	if len(b.Templates) != 6 || len(b.Tariffs.Tariffs) != 3 || len(b.Rules.Rules) != 11 || len(b.Org.Staff) != 7 {
		t.Errorf("%d templates, %d tariffs, %d rules, %d staff; want 6, 3, 11, 7",
			len(b.Templates), len(b.Tariffs.Tariffs), len(b.Rules.Rules), len(b.Org.Staff))
	}
	// Validation fills in the time zone, default poll interval and building.
	for _, p := range c.Projects {
		if p.Location == nil || p.Location.String() != "Asia/Shanghai" {
			t.Errorf("project %q location %v", p.ID, p.Location)
		}
	}
	gw, ok := b.Org.FindGateway("gw-garden-1")
	if !ok {
		t.Fatal("FindGateway(gw-garden-1) found nothing")
	}
	if ref := gw.Ref(); ref.Company != "acme" || ref.Project != "garden" || ref.Gateway != "gw-garden-1" {
		t.Errorf("gateway ref %+v", ref)
	}
	if d := gw.Gateway.Devices[0]; d.PollInterval.Duration != DefaultPollInterval || d.Building != "g-b1" {
		t.Errorf("device %q: poll interval %s, building %q; want the defaults 10s and g-b1", d.ID, d.PollInterval, d.Building)
	}
	if d := gw.Gateway.Devices[4]; d.ID != "garden-elevator-2" || d.Building != "g-b2" {
		t.Errorf("device %q keeps building %q, want its own g-b2", d.ID, d.Building)
	}
	if _, p, ok := b.Org.FindProject("tower"); !ok || p.Tariff != "sh-commercial" {
		t.Errorf("FindProject(tower) = %+v, %v", p, ok)
	}
	if _, ok := b.Org.FindGateway("gw-nowhere"); ok {
		t.Error("FindGateway found a gateway that does not exist")
	}
}

func TestDemoBundleKeepsChineseNames(t *testing.T) {
	b := loadDemo(t)
	c := b.Org.Companies[0]
	for _, n := range []struct{ got, want string }{
		{c.Name, "安居物业服务有限公司"},
		{c.Projects[0].Name, "翠湖花园"},
		{c.Projects[0].Buildings[0].Name, "1号楼"},
		{c.Projects[1].Gateways[0].Name, "A座地下二层配电室"},
		{c.Projects[1].Gateways[0].Devices[5].Name, "A座货梯"},
		{b.Org.Staff[0].Name, "王建国"},
		{b.Tariffs.Tariffs[0].Name, "一般工商业分时电价（示例）"},
		{b.Rules.Rule("elevator-trapped").Name, "电梯困人 / passenger trapped"},
		{b.Templates["elevator"].Point("trapped").Description, "passenger trapped (困人)"},
	} {
		if n.got != n.want {
			t.Errorf("name %q, want %q", n.got, n.want)
		}
	}
}

// TestDemoSecrets checks that the demo passwords and tokens listed in the
// documentation match the hashes in org.yaml.
func TestDemoSecrets(t *testing.T) {
	b := loadDemo(t)
	for _, gw := range []string{"gw-garden-1", "gw-tower-1"} {
		g, ok := b.Org.FindGateway(gw)
		if !ok {
			t.Fatalf("no gateway %q", gw)
		}
		if err := bcrypt.CompareHashAndPassword([]byte(g.Gateway.PasswordHash), []byte("demo-"+gw+"-secret")); err != nil {
			t.Errorf("gateway %q: demo password does not match its hash: %v", gw, err)
		}
	}
	for _, s := range b.Org.Staff {
		sum := sha256.Sum256([]byte("demo-" + s.ID))
		if want := "sha256:" + hex.EncodeToString(sum[:]); s.TokenHash != want {
			t.Errorf("staff %q: token hash is not the hash of %q", s.ID, "demo-"+s.ID)
		}
	}
}

func TestLoadBundleWithoutRules(t *testing.T) {
	b, err := LoadBundle(demoOrg, demoTariffs, demoTemplates, "")
	if err != nil {
		t.Fatalf("LoadBundle without a rules file: %v", err)
	}
	if len(b.Rules.Rules) != 0 || len(b.Org.Companies[0].Projects[0].RuleOverrides) != 1 {
		t.Fatalf("rules %d, overrides %d", len(b.Rules.Rules), len(b.Org.Companies[0].Projects[0].RuleOverrides))
	}
}

// TestLoadBundleReportsEveryFile breaks the organisation and the tariffs at
// once: both files' problems come back, each under its file name.
func TestLoadBundleReportsEveryFile(t *testing.T) {
	dir := t.TempDir()
	org := copyWithEdit(t, demoOrg, dir, "time_zone: Asia/Shanghai\n        floor_area_m2: 86000", "time_zone: Asia/Shenzhen\n        floor_area_m2: 86000")
	tariffs := copyWithEdit(t, demoTariffs, dir, "currency: CNY", "currency: \"\"")
	_, err := LoadBundle(org, tariffs, demoTemplates, demoRules)
	if err == nil {
		t.Fatal("LoadBundle accepted a broken organisation and tariff file")
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v wraps no ValidationError", err)
	}
	for _, want := range []string{
		org + ": 1 configuration problem(s):\n  companies[0].projects[0].time_zone: unknown time zone \"Asia/Shenzhen\"",
		tariffs + ": 1 configuration problem(s):\n  tariffs[0].currency: required (e.g. CNY)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error\n%v\ndoes not contain\n%s", err, want)
		}
	}
	if !strings.HasPrefix(err.Error(), "cannot load configuration:") {
		t.Errorf("error %q does not say what failed", err)
	}
}

// copyWithEdit copies src into dir, replacing the first old with new.
func copyWithEdit(t *testing.T, src, dir, old, new string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s does not contain %q", src, old)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestRuleHelpers(t *testing.T) {
	b := loadDemo(t)
	lc := b.Rules.Rule("lighting-circuit-fault")
	if !lc.Matches(KindLighting, "lighting-panel") || lc.Matches(KindLighting, "tasmota-plug") {
		t.Error("lighting-circuit-fault should match the lighting-panel template only")
	}
	stale := b.Rules.Rule("device-stale")
	if !stale.Matches(KindPump, "pump-vfd") || stale.StaleAfter(10*time.Second) != 11*time.Minute {
		t.Errorf("device-stale: matches every device and waits its 11m (two edge heartbeats); got %s", stale.StaleAfter(10*time.Second))
	}
	if got := (&Rule{Kind: RuleStale}).StaleAfter(10 * time.Second); got != 30*time.Second {
		t.Errorf("a stale rule without after waits 3 intervals; got %s", got)
	}
	if got := b.Rules.Rule("gateway-offline").StaleAfter(time.Second); got != 2*time.Minute {
		t.Errorf("gateway-offline after = %s, want 2m", got)
	}
	if b.Rules.Rule("no-such-rule") != nil {
		t.Error("Rule found a rule that does not exist")
	}
}
