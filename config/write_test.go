package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDemoLightingCircuitsWritable: the demo lighting panel's four coils
// are writable with 0/1 and the default expiry; its meter points are not.
func TestDemoLightingCircuitsWritable(t *testing.T) {
	ts, err := LoadTemplates(demoTemplates)
	if err != nil {
		t.Fatal(err)
	}
	lp := ts["lighting-panel"]
	for _, m := range []string{"circuit1_on", "circuit2_on", "circuit3_on", "circuit4_on"} {
		pt, err := lp.CheckWrite(m, 1)
		if err != nil {
			t.Fatalf("CheckWrite(%s, 1): %v", m, err)
		}
		if pt.CommandExpiry() != DefaultCommandExpiry {
			t.Errorf("%s expiry = %s, want %s", m, pt.CommandExpiry(), DefaultCommandExpiry)
		}
		if _, err := lp.CheckWrite(m, 0); err != nil {
			t.Errorf("CheckWrite(%s, 0): %v", m, err)
		}
	}
	for _, m := range []string{"power_w", "energy_kwh"} {
		if _, err := lp.CheckWrite(m, 1); !errors.Is(err, ErrNotWritable) {
			t.Errorf("CheckWrite(%s) = %v, want ErrNotWritable", m, err)
		}
	}
	for id, tpl := range ts {
		if tpl.Kind != KindElevator {
			continue
		}
		for _, pt := range tpl.Points {
			if pt.Writable {
				t.Errorf("template %s (elevator) has writable point %s", id, pt.Metric)
			}
		}
	}
}

func TestCheckWrite(t *testing.T) {
	lo, hi := 1.0, 6.0
	tpl := &Template{ID: "pump-x", Kind: KindPump, Protocol: ProtoModbus, Points: []Point{
		{Metric: "run", Register: RegCoil, Writable: true},
		{Metric: "pressure_sp", Register: RegHolding, Type: "uint16", Scale: 0.1, Writable: true, Min: &lo, Max: &hi, Expiry: D(10 * time.Second)},
		{Metric: "mode", Register: RegHolding, Type: "uint16", Writable: true, Allowed: []float64{1, 3}},
		{Metric: "flow", Register: RegInput, Type: "float32"},
	}}
	var p Problems
	tpl.Validate(&p)
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		metric string
		value  float64
		want   error
	}{
		{"run", 1, nil}, {"run", 0, nil}, {"run", 0.5, ErrWriteValue}, {"run", 2, ErrWriteValue},
		{"pressure_sp", 1, nil}, {"pressure_sp", 6, nil}, {"pressure_sp", 6.01, ErrWriteValue}, {"pressure_sp", 0.99, ErrWriteValue},
		{"pressure_sp", math.NaN(), ErrWriteValue}, {"pressure_sp", math.Inf(1), ErrWriteValue},
		{"mode", 3, nil}, {"mode", 2, ErrWriteValue},
		{"flow", 1, ErrNotWritable}, {"nope", 1, ErrUnknownPoint},
	}
	for _, c := range cases {
		_, err := tpl.CheckWrite(c.metric, c.value)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("CheckWrite(%s, %v) = %v, want %v", c.metric, c.value, err, c.want)
		}
	}
	if d := tpl.Point("pressure_sp").CommandExpiry(); d != 10*time.Second {
		t.Errorf("pressure_sp expiry = %s, want 10s", d)
	}
	// An elevator template never writes, even if built in code unvalidated.
	el := &Template{ID: "el", Kind: KindElevator, Points: []Point{{Metric: "floor", Register: RegHolding, Type: "int16", Writable: true}}}
	if _, err := el.CheckWrite("floor", 1); !errors.Is(err, ErrNotWritable) {
		t.Errorf("elevator CheckWrite = %v, want ErrNotWritable", err)
	}
}

// A rule's interlocks must name writable points of a template it applies
// to; the problem names the rule's path.
func TestInterlocksNameWritablePoints(t *testing.T) {
	b := loadDemo(t)
	n := len(b.Rules.Rules)
	b.Rules.Rules = append(b.Rules.Rules,
		Rule{ID: "panel-door", Kind: RuleState, Severity: "major", Metric: "power_w", In: []float64{1},
			AppliesTo: AppliesTo{Templates: []string{"lighting-panel"}}, Interlocks: []string{"circuit2_on"}},
		Rule{ID: "panel-typo", Kind: RuleState, Severity: "major", Metric: "power_w", In: []float64{1},
			AppliesTo: AppliesTo{Templates: []string{"lighting-panel"}}, Interlocks: []string{"circuit2_on", "power_w"}},
		Rule{ID: "lift-lock", Kind: RuleState, Severity: "major", Metric: "floor", In: []float64{1},
			AppliesTo: AppliesTo{Kinds: []string{KindElevator}}, Interlocks: []string{"floor"}})
	var p Problems
	b.CheckRefs(&p)
	err := p.Err()
	if err == nil {
		t.Fatal("interlocks on points nothing can write passed")
	}
	msg := err.Error()
	for _, want := range []string{
		fmt.Sprintf(`rules[%d].interlocks[1]: "power_w" is not a writable point of any template rule "panel-typo" applies to`, n+1),
		fmt.Sprintf(`rules[%d].interlocks[0]: "floor" is not a writable point`, n+2),
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("problems %q lack %q", msg, want)
		}
	}
	if strings.Contains(msg, fmt.Sprintf("rules[%d]", n)) || strings.Contains(msg, "rules["+fmt.Sprint(n+1)+"].interlocks[0]") {
		t.Errorf("a writable interlocked point was reported: %s", msg)
	}
}

// TestDemoRelaysWritable: the Tasmota and Shelly relays of the demo
// templates take 0/1 through CheckWrite, their meter fields do not.
func TestDemoRelaysWritable(t *testing.T) {
	ts, err := LoadTemplates(demoTemplates)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"tasmota-plug", "shelly-plus-1pm"} {
		tpl := ts[id]
		for _, v := range []float64{0, 1} {
			pt, err := tpl.CheckWrite("switch_on", v)
			if err != nil {
				t.Fatalf("%s: CheckWrite(switch_on, %v): %v", id, v, err)
			}
			if pt.Register != RegRelay || pt.CommandExpiry() != DefaultCommandExpiry {
				t.Errorf("%s: point %+v, want a relay with the default expiry", id, pt)
			}
		}
		if _, err := tpl.CheckWrite("switch_on", 2); !errors.Is(err, ErrWriteValue) {
			t.Errorf("%s: CheckWrite(switch_on, 2) = %v, want ErrWriteValue", id, err)
		}
		if _, err := tpl.CheckWrite("power_w", 1); !errors.Is(err, ErrNotWritable) && !errors.Is(err, ErrUnknownPoint) {
			t.Errorf("%s: CheckWrite(power_w) = %v, want refused", id, err)
		}
		if tpl.Relay("switch_on") == nil || tpl.Relay("power_w") != nil {
			t.Errorf("%s: Relay lookup wrong", id)
		}
	}
}

// TestCommandRolesNameCompanies: remote_control.roles names companies of
// the organisation; an unknown one is reported with its path, a known one
// is not, and CommandRoles returns what the file says.
func TestCommandRolesNameCompanies(t *testing.T) {
	b := loadDemo(t)
	b.Rules.RemoteControl.Roles = map[string][]string{
		"acme": {RoleHQAdmin, RoleProjectManager, RoleTechnician},
		"acne": {RoleHQAdmin},
	}
	var p Problems
	b.CheckRefs(&p)
	err := p.Err()
	if err == nil {
		t.Fatal("remote_control.roles naming an unknown company passed")
	}
	if msg := err.Error(); !strings.Contains(msg, `remote_control.roles.acne: unknown company "acne"`) || strings.Contains(msg, "roles.acme") {
		t.Errorf("problems %q: want acne reported, acme not", msg)
	}
	if roles, ok := b.Rules.CommandRoles("acme"); !ok || !slices.Equal(roles, []string{RoleHQAdmin, RoleProjectManager, RoleTechnician}) {
		t.Errorf("CommandRoles(acme) = %v, %v", roles, ok)
	}
	if roles, ok := b.Rules.CommandRoles("other"); ok || roles != nil {
		t.Errorf("CommandRoles(other) = %v, %v; want the default (false)", roles, ok)
	}
	var none *RuleFile
	if _, ok := none.CommandRoles("acme"); ok {
		t.Error("a nil rule file overrides the default")
	}
}
